"""Paths shared by the end-to-end fixtures."""

import os
from pathlib import Path


def open_path_for(path):
    """As root, let the unprivileged server user traverse path's ancestors
    (pytest makes its temporary directories 0700)."""
    if os.geteuid() != 0:
        return
    p = Path(path).resolve()
    for d in [p, *p.parents]:
        if str(d) in ("/", "/tmp"):
            break
        mode = d.stat().st_mode & 0o777
        if mode & 0o011 != 0o011:
            os.chmod(d, mode | 0o011)

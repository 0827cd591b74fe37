"""`make install` as a packager runs it: the pkg-config file names the
PREFIX of the install at hand (not of an earlier build), changing PREFIX
rebuilds no object, every installed manual page has a NAME line that
lexgrog (man-db, hence apropos and whatis) can parse, and smtpkit(1)'s SEE
ALSO names every other page.

The build directory of the binary under test (SMTPKIT_BIN's directory) is
copied with its timestamps, so the install reuses its objects and the real
build directory is left as it was."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def build_copy(smtpkit_bin, tmp_path):
    """A copy of the build directory of the binary under test."""
    src = Path(smtpkit_bin).resolve().parent
    if not (src / "obj").is_dir():
        pytest.skip(f"{src} is not a build directory of this tree (no obj/)")
    dst = tmp_path / "build"
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns("tests"))
    return dst


def make_install(build, prefix, destdir):
    # run by `make e2e`, the suite would hand its own make's settings (SAN=1,
    # the jobserver) down to this one: start from a clean slate
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = subprocess.run(["make", "-C", str(REPO), f"BUILD={build}", f"PREFIX={prefix}",
                        f"DESTDIR={destdir}", "install"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout + r.stderr


def pc_variable(destdir, prefix, name):
    env = dict(os.environ, PKG_CONFIG_PATH=f"{destdir}{prefix}/lib/pkgconfig",
               PKG_CONFIG_LIBDIR="")
    env.pop("PKG_CONFIG_SYSROOT_DIR", None)
    r = subprocess.run(["pkg-config", f"--variable={name}", "smtpkit"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def compiled(output):
    """The compiler lines make printed (objects or programs rebuilt)."""
    return [l for l in output.splitlines() if re.search(r"\s-c\s\S+\.c\b", l)
            or re.search(r"\s-o\s\S+/(smtpkit|libsmtpkit\.\w+)\b", l)]


def test_install_follows_prefix_without_rebuilding(build_copy, tmp_path):
    d1, d2 = tmp_path / "dest-usr", tmp_path / "dest-opt"
    make_install(build_copy, "/usr", d1)
    pc = (d1 / "usr/lib/pkgconfig/smtpkit.pc").read_text()
    assert re.search(r"^prefix=/usr$", pc, re.M), pc
    assert pc_variable(d1, "/usr", "prefix") == "/usr"
    assert pc_variable(d1, "/usr", "includedir") == "/usr/include"
    assert pc_variable(d1, "/usr", "libdir") == "/usr/lib"
    assert (d1 / "usr/bin/smtpkit").is_file()

    out = make_install(build_copy, "/opt/x", d2)
    assert compiled(out) == [], out  # a new PREFIX rebuilds no object
    pc = (d2 / "opt/x/lib/pkgconfig/smtpkit.pc").read_text()
    assert re.search(r"^prefix=/opt/x$", pc, re.M), pc
    assert "/usr/local" not in pc
    assert pc_variable(d2, "/opt/x", "prefix") == "/opt/x"
    assert pc_variable(d2, "/opt/x", "libdir") == "/opt/x/lib"

    # back to the first prefix: the file follows again
    d3 = tmp_path / "dest-usr-again"
    out = make_install(build_copy, "/usr", d3)
    assert compiled(out) == [], out
    assert pc_variable(d3, "/usr", "prefix") == "/usr"


def test_installed_man_pages_parse_with_lexgrog(build_copy, tmp_path):
    dest = tmp_path / "dest"
    make_install(build_copy, "/usr", dest)
    mandir = dest / "usr/share/man"
    installed = sorted(p.name for p in mandir.glob("man*/*") if p.is_file())
    assert installed == sorted(p.name for p in (REPO / "man").iterdir()), installed
    for page in sorted(mandir.glob("man*/*")):
        r = subprocess.run(["lexgrog", str(page)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, f"{page.name}: {r.stdout}{r.stderr}"
        # the name apropos indexes is the page's own name (smtpkit-passwd,
        # not "smtpkit passwd")
        name = page.name.rsplit(".", 1)[0]
        assert re.search(r':\s*"' + re.escape(name) + r" - ", r.stdout), r.stdout


def see_also(page_text):
    """The (name, section) pairs of a page's SEE ALSO section."""
    m = re.search(r"^\.SH SEE ALSO\n(.*?)(?=^\.SH |\Z)", page_text, re.M | re.S)
    assert m, "no SEE ALSO section"
    refs = re.findall(r"^\.BR\s+\"?([\w.\\-]+)\"?\s+\((\d)\)", m.group(1), re.M)
    return {(name.replace("\\-", "-"), sec) for name, sec in refs}


def test_smtpkit_1_see_also_names_every_page():
    pages = {tuple(p.name.rsplit(".", 1)) for p in (REPO / "man").iterdir()}
    pages.discard(("smtpkit", "1"))
    refs = see_also((REPO / "man" / "smtpkit.1").read_text())
    assert pages - refs == set(), f"missing from smtpkit(1) SEE ALSO: {sorted(pages - refs)}"
    assert refs - pages == set(), f"SEE ALSO names pages that do not exist: {refs - pages}"

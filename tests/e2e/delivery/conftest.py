"""Fixtures for the outbound delivery tests: see delivery_harness.py."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "client"))  # fakeservers: dnsmasq, scripted peers
sys.path.insert(0, str(HERE))

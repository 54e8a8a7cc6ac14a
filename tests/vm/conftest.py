"""Fixtures for the VM tier: the same as the host tier's (husktest.py)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from husktest import *  # noqa: E402,F401,F403
from husktest import bundle, husk, rootfs_template  # noqa: E402,F401

"""Fixtures for the host integration tier (see husktest.py)."""
from husktest import *  # noqa: F401,F403
from husktest import bundle, husk, rootfs_template  # noqa: F401
from rootlessfix import rootless_base, rootless_user  # noqa: F401

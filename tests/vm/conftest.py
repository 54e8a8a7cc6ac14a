"""Fixtures for the VM tier: the same as the host tier's (husktest.py)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from husktest import *  # noqa: E402,F401,F403
from husktest import bundle, husk, rootfs_template  # noqa: E402,F401

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def searchable_tmp_path(request):
    """pytest makes its temporary directories 0700. A task in a user
    namespace range of its own (the nspawn flavor's private_users = pick)
    has a root that is not the host's, and its init walks to its bundle and
    root under the driver's state dir there, as it would under
    /var/lib/husk-driver: the directories from /tmp down are made searchable
    (0711, not listable)."""
    if "tmp_path" not in request.fixturenames:
        yield
        return
    tmp = request.getfixturevalue("tmp_path")
    p = tmp
    while str(p).startswith("/tmp/") and str(p) != "/tmp":
        os.chmod(p, os.stat(p).st_mode & 0o7777 | 0o711)
        p = p.parent
    yield

"""Shared by the sandbox tests: the places a stray file would land, and the clean-up assertion."""

import os

from thinkrl.sandbox.audit import files_owned_by, leftover_processes, paths_named

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUTSIDE = ["/tmp", "/var/tmp", "/dev/shm", "/run/lock", os.path.expanduser("~"), REPO]


def assert_clean(marker: str = "thinkrl_pwned") -> None:
    """No process of any sandbox uid, and no file outside a sandbox folder from the code."""
    assert leftover_processes() == {}
    assert files_owned_by(OUTSIDE, max_depth=2) == []
    assert paths_named(OUTSIDE + ["/"], marker, max_depth=1) == []

"""After-the-fact checks that an execution left nothing behind: used by the tests and the fuzz run."""

from __future__ import annotations

import os

from thinkrl.sandbox.run import SLOTS, UID_BASE, processes_of_uids


def leftover_processes(uid_base: int = UID_BASE, slots: int = SLOTS) -> dict[int, list[int]]:
    """{uid: live pids} for every sandbox uid that still has processes. Empty when clean."""
    return processes_of_uids(range(uid_base, uid_base + slots))


def _walk(roots: list[str], max_depth: int):
    """Every path under `roots`, `max_depth` folders deep at most, not following links."""
    for root in roots:
        base_depth = root.rstrip("/").count("/")
        for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: None):
            if dirpath.count("/") - base_depth >= max_depth:
                dirnames[:] = []
            yield from (os.path.join(dirpath, name) for name in dirnames + filenames)


def files_owned_by(roots: list[str], uid_base: int = UID_BASE, slots: int = SLOTS, max_depth: int = 4) -> list[str]:
    """Paths under `roots` (to max_depth, not following links) owned by a sandbox uid: a sandboxed
    process left a file outside its folder. Root-owned files of other users are not its doing."""
    uids = range(uid_base, uid_base + slots)
    hits = []
    for path in _walk(roots, max_depth):
        try:
            if os.lstat(path).st_uid in uids:
                hits.append(path)
        except OSError:
            pass  # removed while we walked
    return hits


def paths_named(roots: list[str], marker: str, max_depth: int = 4) -> list[str]:
    """Paths under `roots` whose name contains `marker` (the fuzz snippets' file names carry one)."""
    return [p for p in _walk(roots, max_depth) if marker in os.path.basename(p)]

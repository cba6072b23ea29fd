"""After-the-fact checks that an execution left nothing behind: used by the tests and the fuzz run."""

from __future__ import annotations

import os

from thinkrl.sandbox.run import processes_of_uids


def leftover_processes(uid_base: int = 61000, slots: int = 256) -> dict[int, list[int]]:
    """{uid: live pids} for every sandbox uid that still has processes. Empty when clean."""
    return processes_of_uids(range(uid_base, uid_base + slots))


def files_owned_by(roots: list[str], uid_base: int = 61000, slots: int = 256, max_depth: int = 4) -> list[str]:
    """Paths under `roots` (to max_depth, not following links) owned by a sandbox uid: a sandboxed
    process left a file outside its folder. Root-owned files of other users are not its doing."""
    uids = range(uid_base, uid_base + slots)
    hits = []
    for root in roots:
        base_depth = root.rstrip("/").count("/")
        for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: None):
            if dirpath.count("/") - base_depth >= max_depth:
                dirnames[:] = []
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                try:
                    if os.lstat(path).st_uid in uids:
                        hits.append(path)
                except OSError:
                    pass  # removed while we walked
    return hits


def paths_named(roots: list[str], marker: str, max_depth: int = 4) -> list[str]:
    """Paths under `roots` whose name contains `marker` (the fuzz snippets' file names carry one)."""
    hits = []
    for root in roots:
        base_depth = root.rstrip("/").count("/")
        for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: None):
            if dirpath.count("/") - base_depth >= max_depth:
                dirnames[:] = []
            hits += [os.path.join(dirpath, n) for n in dirnames + filenames if marker in n]
    return hits

"""`thinkrl STAGE --nproc N ...`: the one-machine shorthand of `torchrun --nproc-per-node N -m thinkrl STAGE ...`."""

from __future__ import annotations

import os
import subprocess
import sys

DISTRIBUTED = ("rl", "sft")  # stages that run data-parallel; the others say so (thinkrl.cli)


def without_nproc(argv: list[str]) -> list[str]:
    """argv minus `--nproc N` / `--nproc=N`."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def relaunch(nproc: int, argv: list[str]) -> int:
    """Run this command again as `nproc` torchrun processes on this machine; their exit status."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           "-m", "thinkrl", *without_nproc(argv)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))}
    return subprocess.call(cmd, env=env)


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or a plain process: the one that prints."""
    return os.environ.get("RANK", "0") == "0"


def data_parallel(command: str, nproc: int, argv: list[str]) -> int | None:
    """What `thinkrl COMMAND` does about processes before it runs: None = go on here; else an exit
    status: `--nproc N` relaunched under torchrun, or 2 for a stage that is not data-parallel
    started as several processes (they would all write the same run)."""
    from thinkrl.dist import launched

    if nproc > 1 and not launched():
        return relaunch(nproc, argv)
    if launched() and int(os.environ["WORLD_SIZE"]) > 1 and command not in DISTRIBUTED:
        if is_main_process():
            print(f"thinkrl {command}: error: runs in one process; the data-parallel stages are "
                  f"{', '.join(DISTRIBUTED)} (torchrun / --nproc)", file=sys.stderr)
        return 2
    return None

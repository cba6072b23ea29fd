"""Fuzz the sandbox with generated hostile snippets; check nothing is left running or written outside.

    python benchmarks/sandbox_fuzz.py [--n 1000] [--seed 0] [--workers 4]

Each snippet chains 1-3 attacks from the security table, in random order with random sizes:
fork bombs, memory bombs, infinite loops, spinning threads, long sleeps, writes outside the folder,
disk filling inside it, reads of homes and /proc, sockets, signals to the parent and to -1, huge
output, subprocesses, setsid daemons, deep recursion (plus a harmless print, so some run clean).
Every attack is wrapped in try/except so that the next one runs when the first is refused.
All run through one Pool. Afterwards: no process of any sandbox uid may be alive, no file owned
by a sandbox uid and no file carrying the run's marker may exist under /tmp, /var/tmp, /dev/shm,
/run/lock, $HOME, the repo or /. Prints the counts by status, the time, and the checks; exits 1
if a check fails or a snippet raised in the parent.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import time

from thinkrl.sandbox import Limits, Pool
from thinkrl.sandbox.audit import files_owned_by, leftover_processes, paths_named

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTSIDE = ["/tmp", "/var/tmp", "/dev/shm", "/run/lock", os.path.expanduser("~"), REPO]


def _attacks(rng: random.Random, marker: str, parent_pid: int) -> dict[str, str]:
    """name -> one attack's code, with this draw's random sizes. Each is a self-contained block."""
    outside = rng.choice(["/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/root", "/etc", "/", REPO, "/work"])
    return {
        "fork_bomb": f"while True:\n    try: os.fork()\n    except OSError: {rng.choice(['pass', 'break'])}",
        "memory_bomb": f"hog = []\nwhile True: hog.append(bytearray({rng.choice([10**5, 10**6, 10**7, 10**8])}))",
        "one_huge_alloc": f"x = bytearray({rng.choice([10**9, 10**10, 2**40])})",
        "infinite_loop": "while True: pass",
        "thread_spin": f"import threading\nfor _ in range({rng.randint(1, 8)}):\n"
                       "    threading.Thread(target=lambda: [None for _ in iter(int, 1)], daemon=True).start()\n"
                       "threading.Event().wait()",
        "sleep": f"time.sleep({rng.choice([0.1, 1, 5, 100])})",
        "write_outside": f"open({os.path.join(outside, marker + str(rng.randint(0, 9999)))!r}, 'w').write('x')",
        "mkdir_outside": f"os.makedirs({os.path.join(outside, marker + '_dir', 'sub')!r})",
        "fill_disk": f"for i in range({rng.randint(1, 100)}):\n    open(f'fill{{i}}', 'wb').write(b'x' * {rng.choice([10**5, 10**6, 10**7])})",
        "read_home": "print([os.listdir(p) for p in ('/root', '/home', os.path.expanduser('~'))])\n"
                     "print(open('/proc/1/environ').read()[:100])",
        "read_env": f"print(dict(os.environ))\nprint(open('/proc/{parent_pid}/environ').read()[:100])",
        "socket": f"import socket\ns = socket.socket()\ns.settimeout(3)\n"
                  f"s.connect(({rng.choice(['127.0.0.1', '10.255.255.1', '8.8.8.8'])!r}, {rng.randint(1, 65535)}))",
        "kill_parent": f"os.kill({rng.choice([parent_pid, 1, -1, 0])}, {rng.choice([9, 15, 2])})",
        "huge_output": f"while True: sys.{rng.choice(['stdout', 'stderr'])}.write('y' * {rng.choice([10, 1000, 100000])})",
        "subprocess": f"import subprocess\nsubprocess.Popen(['sh', '-c', 'sleep {rng.randint(5, 500)} &'])\n"
                      "print(subprocess.run(['id'], capture_output=True, text=True).stdout)",
        "setsid_daemon": "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(1000)\n"
                         "    os._exit(0)",
        "recursion": "import sys\nsys.setrecursionlimit(10**6)\ndef f(n): return f(n + 1)\nf(0)",
        "harmless": f"print({rng.randint(0, 10**6)})",
    }


def snippet(rng: random.Random, marker: str, parent_pid: int) -> str:
    """One hostile program: 1-3 attacks in a random order, each in its own try/except."""
    attacks = _attacks(rng, marker, parent_pid)
    chosen = rng.sample(sorted(attacks), rng.randint(1, 3))
    lines = ["import os, sys, time"]
    for name in chosen:
        body = "\n".join("    " + line for line in attacks[name].splitlines())
        lines.append(f"try:\n{body}\nexcept BaseException as e:\n    print({name!r}, type(e).__name__)")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    limits = Limits(cpu_s=1, wall_s=2, memory_mb=256, processes=16, file_mb=8, output_bytes=8192)
    marker = f"thinkrl_fuzz_{args.seed}_"
    rng = random.Random(args.seed)
    codes = [snippet(rng, marker, os.getpid()) for _ in range(args.n)]
    tmp_before = set(os.listdir("/tmp"))

    start = time.monotonic()
    with Pool(args.workers, limits) as pool:
        results = pool.map(codes)
    elapsed = time.monotonic() - start

    counts = collections.Counter(r.status for r in results)
    slowest = max(r.seconds for r in results)
    left = leftover_processes()
    owned = files_owned_by(OUTSIDE)
    marked = paths_named(OUTSIDE + ["/"], marker, max_depth=2)
    new_tmp = sorted(set(os.listdir("/tmp")) - tmp_before)
    print(f"sandbox fuzz: {args.n} snippets, seed {args.seed}, {args.workers} workers, limits {limits}")
    print(f"time: {elapsed:.1f} s ({elapsed / args.n * 1000:.0f} ms per snippet), slowest {slowest:.2f} s "
          f"(wall limit {limits.wall_s} s)")
    print("by status: " + ", ".join(f"{s} {c}" for s, c in counts.most_common()))
    print(f"processes of sandbox uids left: {sum(len(p) for p in left.values())}")
    print(f"files owned by sandbox uids outside: {len(owned)}; files with the marker: {len(marked)}")
    print(f"new entries in /tmp (any owner, includes other users' files): {len(new_tmp)} {new_tmp[:10]}")
    bad = left or owned or marked or counts.get("refused", 0) or slowest > limits.wall_s + 2
    print("RESULT:", "FAIL" if bad else "PASS")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

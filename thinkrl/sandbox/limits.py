"""Resource limits of one sandboxed execution, validated on construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Limits:
    """What one execution of model-written code may use.

    cpu_s: CPU seconds of each process (RLIMIT_CPU: SIGXCPU at the limit, SIGKILL a second later).
    wall_s: wall-clock seconds of the whole execution; at the limit every process of it is killed.
    memory_mb: address space of each process (RLIMIT_AS), so a memory bomb gets MemoryError.
    processes: processes (and threads) the sandbox uid may hold at once (RLIMIT_NPROC).
    file_mb: largest file (RLIMIT_FSIZE) and also the size of the private /tmp, so the working
        folder as a whole can never hold more than this.
    output_bytes: bytes kept of stdout and of stderr each; past it the execution is killed.
    allow_network: the opt-out. False (default) refuses to run where no network namespace can be
        made; True runs without one (the code can then reach the network).
    """

    cpu_s: float = 5.0
    wall_s: float = 10.0
    memory_mb: int = 512
    processes: int = 32
    file_mb: int = 16
    output_bytes: int = 64_000
    allow_network: bool = False

    def __post_init__(self):
        for name in ("cpu_s", "wall_s", "memory_mb", "processes", "file_mb", "output_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"Limits.{name} must be a positive number, got {value!r}")
        # Python itself needs room to start: below these it fails before running any user code,
        # which would read as the code's fault.
        if self.memory_mb < 64:
            raise ValueError(f"Limits.memory_mb must be at least 64 (Python's own start), got {self.memory_mb}")
        if self.processes < 2:
            raise ValueError(f"Limits.processes must be at least 2, got {self.processes}")
        if not isinstance(self.allow_network, bool):
            raise ValueError(f"Limits.allow_network must be a bool, got {self.allow_network!r}")

    def to_dict(self) -> dict:
        return asdict(self)

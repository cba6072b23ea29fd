"""Kill test: SIGKILL an RL run at random moments, resume it each time, and compare with a run never killed.

    python benchmarks/kill_test.py [--kills 20] [--steps 30] [--save-every 2] [--seed 0] [--work DIR] [--tools] [--nproc N]

A tiny random-weight llama (byte tokenizer, built locally) learns 1-digit sums on the CPU, seeded.
First the run goes through uninterrupted (the reference). Then the same run, in a fresh
`thinkrl rl` process each time, is SIGKILLed at a random moment and started again with
`--resume` (from scratch when no checkpoint exists yet), --kills times, and then left to finish.
Passes (exit 0) when the killed run ends with bit-identical final weights (torch.equal on every
tensor of final/model.safetensors), the same metrics.jsonl and samples.jsonl row for row (timing
keys left out), every resume started from the newest complete checkpoint, and no temp folder
survived the finished run.

Kills are aimed at phases: each attempt picks a phase (start-up, generation, update, metrics
write, held-out eval, checkpoint write, final save), waits for its k-th start and then a random
part of that phase's duration in the reference run. The child is the real CLI (`thinkrl.cli.main`)
with the loop's functions wrapped to print `@@ begin PHASE` / `@@ end PHASE` markers; the
phase a kill landed in is read from the markers the child printed before it died. Kills that
left a half-written checkpoint folder or a torn last line in metrics/samples are counted: they
show the crash windows were hit, not only the gaps between them.

With --tools, rollouts are multi-turn: every completion calls the Python tool after its second
token (the call is forced, since a random model writes no tags: `print(6 * 7)`), the code runs in
thinkrl.sandbox and its result is inserted with loss mask 0; kills then also land in the middle of
tool calls, and no sandboxed process may survive a kill.

With --nproc N, each attempt is a torchrun job of N ranks (data-parallel, thinkrl.dist) and a
kill hits one rank chosen at random: the others must stop within STOP_TIMEOUT_S (torchrun's agent
ends the job when a rank dies; a rank stuck in a collective times out), never hang.

The children run with OMP_NUM_THREADS=1, so the reference and the killed run do the same
floating-point sums. tests/test_kill.py runs a 2-kill version of this.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

TIMING_PREFIXES = ("time/", "tokens_per_second/", "eval/seconds", "tools/seconds", "eval/tools/seconds")  # differ run to run; everything else must not
WEIGHTS = {"startup": 2, "generate": 4, "update": 4, "log": 2, "eval": 2, "checkpoint": 6, "final": 3}  # final: near the end only
RESUME_LINE = re.compile(r"^resuming from (\S+) \(step (\d+)\)$")


# ---------------------------------------------------------------- the child: the real CLI with phase markers


def _mark(what: str, phase: str) -> None:
    if os.environ.get("RANK", "0") != "0":  # data-parallel: rank 0 speaks for the run
        return
    sys.stdout.write(f"@@ {what} {phase}\n")
    sys.stdout.flush()


def _wrap(owner, name: str, phase: str) -> None:
    fn = getattr(owner, name)

    def marked(*args, **kwargs):
        _mark("begin", phase)
        out = fn(*args, **kwargs)
        _mark("end", phase)
        return out

    setattr(owner, name, marked)


def child(argv: list[str]) -> int:
    """`thinkrl <argv>` with markers around the loop's phases (module globals train() looks up per call)."""
    import thinkrl.train.rl as rl
    from thinkrl import cli
    from thinkrl.train.logger import RunLogger

    if os.environ.get("THINKRL_KILL_TEST_TOOLS"):
        from thinkrl.engine import Engine
        from thinkrl.tools import Toolbox

        def turn_ended(self, res, start, env, finished):  # a call after the second token, once
            return len(res.token_ids) == 2 and not finished and res.turns <= env.max_steps

        Engine._turn_ended = turn_ended
        Toolbox.find_call = lambda self, text: ("python", "print(6 * 7)", "")
    for name, phase in (("collect", "generate"), ("update", "update"), ("evaluate_heldout", "eval"),
                        ("save_checkpoint", "checkpoint"), ("save_sharded_checkpoint", "checkpoint"),
                        ("save_pretrained", "final")):
        _wrap(rl, name, phase)
    _wrap(RunLogger, "log", "log")
    _wrap(RunLogger, "samples", "log")
    return cli.main(argv)


# ---------------------------------------------------------------- the parent: runs, kills, comparisons


TOOLS = """
[tools]
python = true
max_calls = 1
result_max_tokens = 8
call_timeout_s = 10.0
"""


def recipe(model_dir: Path, steps: int, save_every: int, eval_every: int, tools: bool = False) -> str:
    new_tokens = 24 if tools else 8  # room for the inserted result
    return f"""steps = {steps}
prompts_per_step = 2
group_size = 4
seed = 0
sample_every = 1
save_every = {save_every}
keep_checkpoints = 2

[model]
name = "{model_dir}"
device = "cpu"

[task]
name = "arithmetic"
digits = "1,1"
ops = "+"
num_eval = 20
template = "raw"
shots = 1

[sampling]
temperature = 1.0
max_new_tokens = {new_tokens}

[rewards]
accuracy = 1.0
format_soft = 0.5
tag_count = 0.5
language = 0.5  # varies with a random model's bytes: groups carry a signal and the weights move

[algo]
micro_batch_size = 4
mini_batches = 2
epochs = 2

[optim]
lr = 1e-3

[eval]
limit = 4
every = {eval_every}

[eval.sampling]
temperature = 0.0
max_new_tokens = {new_tokens}
""" + (TOOLS if tools else "")


@dataclass
class Attempt:
    """One child process: its markers (parent-side times) and how it ended."""

    events: list[tuple[float, str]] = field(default_factory=list)  # (seconds since spawn, line)
    started: float = 0.0
    rc: int | None = None
    killed: bool = False

    def phase(self) -> str:
        """The phase the child was in when its output stopped: the last one begun and not ended."""
        open_phase, seen = None, False
        for _, line in self.events:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "@@":
                seen = True
                open_phase = parts[2] if parts[1] == "begin" else None
        if open_phase:
            return open_phase
        return "between phases" if seen else "startup"

    def begins(self, phase: str) -> int:
        return sum(1 for _, line in self.events if line == f"@@ begin {phase}")

    def resumed_from(self) -> tuple[str, int] | None:
        for _, line in self.events:
            m = RESUME_LINE.match(line)
            if m:
                return m.group(1), int(m.group(2))
        return None


def spawn(argv: list[str], log: Path, tools: bool = False, nproc: int = 1) -> tuple[subprocess.Popen, Attempt, threading.Thread]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    if tools:
        env["THINKRL_KILL_TEST_TOOLS"] = "1"
    att = Attempt(started=time.monotonic())
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"] if nproc > 1 else [sys.executable]
    with open(log, "w") as err:  # the child keeps its own copy of the file
        proc = subprocess.Popen([*launcher, os.path.abspath(__file__), "--child", *argv], stdout=subprocess.PIPE,
                                stderr=err, text=True, env=env)

    def read():
        with proc.stdout:
            for line in proc.stdout:
                att.events.append((time.monotonic() - att.started, line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return proc, att, reader


def durations(att: Attempt) -> dict[str, float]:
    """Median duration of each phase in one (uninterrupted) run; start-up = spawn to the first marker."""
    spans: dict[str, list[float]] = {}
    opened: dict[str, float] = {}
    first = None
    for t, line in att.events:
        parts = line.split()
        if len(parts) != 3 or parts[0] != "@@":
            continue
        first = t if first is None else first
        if parts[1] == "begin":
            opened[parts[2]] = t
        elif parts[2] in opened:
            spans.setdefault(parts[2], []).append(t - opened.pop(parts[2]))
    out = {k: statistics.median(v) for k, v in spans.items()}
    out["startup"] = first or 1.0
    return out


def phases_ahead(done: int | None, steps: int, save_every: int, eval_every: int) -> dict[str, int]:
    """How many times each phase starts in a run from checkpoint step `done` (None: from scratch) to the end."""
    after = range((done or 0) + 1, steps + 1)
    evals = sum(1 for s in after if (eval_every and s % eval_every == 0) or s == steps) + (done is None)
    return {"startup": 1, "generate": len(after), "update": len(after), "log": 2 * len(after) + evals, "eval": evals,
            "checkpoint": sum(1 for s in after if (save_every and s % save_every == 0) or s == steps),
            "final": int(len(after) <= 2)}  # a kill there ends the steps: keep the other phases in play until then


STOP_TIMEOUT_S = 120  # a data-parallel run whose rank was killed must have stopped by then


def moved(start: Path, final: Path) -> bool:
    """Did training change the weights at all (else "identical final weights" would prove nothing)?"""
    from safetensors.torch import load_file

    a, b = load_file(start / "model.safetensors"), load_file(final / "model.safetensors")
    return any(not bool((a[k] == b[k]).all()) for k in a)


def children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (Linux /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _sigkill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kill_one(proc: subprocess.Popen, nproc: int, rng: random.Random) -> int | None:
    """SIGKILL the run: the process itself, or (torchrun) one of its ranks chosen at random. The pid killed."""
    if nproc == 1:
        _sigkill(proc.pid)
        return proc.pid
    ranks = children(proc.pid)
    if not ranks:
        return None
    victim = rng.choice(sorted(ranks))
    _sigkill(victim)
    return victim


def sandbox_survivors(wait_s: float = 5.0) -> int:
    """Processes of the sandbox's uids still alive `wait_s` after a kill (their parent-death signals
    should have ended them at once)."""
    from thinkrl.sandbox.run import SLOTS, UID_BASE, processes_of_uids

    deadline = time.monotonic() + wait_s
    while (left := processes_of_uids(range(UID_BASE, UID_BASE + SLOTS))) and time.monotonic() < deadline:
        time.sleep(0.05)
    return sum(len(p) for p in left.values())


def latest_step(run: Path) -> int | None:
    from thinkrl.train.checkpoint import latest_checkpoint

    ckpt = latest_checkpoint(run)
    return None if ckpt is None else int(ckpt.name.split("-")[1])


def leftovers(run: Path) -> list[str]:
    """Hidden temp / half-deleted folders a killed writer left (in the run folder and checkpoints/)."""
    found = []
    for folder in (run, run / "checkpoints"):
        if folder.is_dir():
            found += [str(p.relative_to(run)) for p in folder.iterdir() if p.name.startswith(".") and p.is_dir()]
    return sorted(found)


def torn(run: Path) -> list[str]:
    out = []
    for name in ("metrics.jsonl", "samples.jsonl"):
        p = run / name
        if p.is_file() and p.stat().st_size and not p.read_bytes().endswith(b"\n"):
            out.append(name)
    return out


def rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [{k: v for k, v in json.loads(x).items() if not k.startswith(TIMING_PREFIXES)}
            for x in path.read_text(encoding="utf-8").splitlines()]


def step_keys(metrics: list[dict]) -> list[tuple[str, int]]:
    return [("eval" if any(k.startswith("eval/") for k in r) else "train", r["step"]) for r in metrics]


def compare(ref: Path, run: Path) -> dict:
    """Final weights, metrics and samples of the killed run against the reference."""
    from safetensors.torch import load_file
    import torch

    a, b = load_file(ref / "final" / "model.safetensors"), load_file(run / "final" / "model.safetensors")
    differing = sorted(k for k in a.keys() | b.keys() if k not in a or k not in b or not torch.equal(a[k], b[k]))
    ma, mb = rows(ref / "metrics.jsonl"), rows(run / "metrics.jsonl")
    ka, kb = step_keys(ma), step_keys(mb)
    return {
        "tensors": len(a), "differing_tensors": differing,
        "metrics_rows": (len(ma), len(mb)),
        "duplicated": sorted({k for k in kb if kb.count(k) > 1}),
        "missing": sorted(set(ka) - set(kb)), "extra": sorted(set(kb) - set(ka)),
        "metrics_equal": ma == mb,
        "first_metrics_diff": next((i for i in range(max(len(ma), len(mb))) if ma[i:i + 1] != mb[i:i + 1]), None),
        "samples_equal": rows(ref / "samples.jsonl") == rows(run / "samples.jsonl"),
    }


def run(kills: int = 20, steps: int = 30, save_every: int = 2, eval_every: int = 3, seed: int = 0,
        work: Path | None = None, phases: tuple[str, ...] | None = None, verbose: bool = True,
        tools: bool = False, nproc: int = 1) -> dict:
    """The whole test; returns the summary (see main). `phases` limits the phases aimed at."""
    from thinkrl.models import save_pretrained, tiny_model

    say = print if verbose else (lambda *a, **k: None)
    t_start = time.monotonic()
    work = Path(work or tempfile.mkdtemp(prefix="thinkrl-kill-"))
    work.mkdir(parents=True, exist_ok=True)
    model_dir = save_pretrained(*tiny_model("llama", seed=5), work / "tiny")
    (work / "recipe.toml").write_text(recipe(model_dir, steps, save_every, eval_every, tools), encoding="utf-8")
    base = ["rl", str(work / "recipe.toml")]
    ref_dir, run_dir = work / "ref", work / "killed"
    for d in (ref_dir, run_dir):
        shutil.rmtree(d, ignore_errors=True)

    proc, ref, reader = spawn([*base, "--out-dir", str(ref_dir)], work / "ref.log", tools, nproc)
    ref.rc = proc.wait()
    reader.join()
    if ref.rc != 0:
        raise SystemExit(f"kill_test: the reference run failed (exit {ref.rc}); see {work / 'ref.log'}")
    t_ref = time.monotonic() - t_start
    dur = durations(ref)
    say(f"reference run: {steps} steps in {t_ref:.1f} s; phase medians "
        + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in sorted(dur.items())), flush=True)

    rng = random.Random(seed)
    summary = {"kills": 0, "resumes": 0, "fresh_starts": 0, "by_phase": {}, "half_written": 0, "torn_lines": 0,
               "bad_resume": [], "attempts": 0, "sandbox_survivors": 0,
               "hangs": 0, "stop_s": 0.0}
    aim = {p: w for p, w in WEIGHTS.items() if phases is None or p in phases}
    while True:
        done = latest_step(run_dir)
        argv = [*base, "--out-dir", str(run_dir)]
        if done is not None:
            argv.append("--resume")
            summary["resumes"] += 1
        elif run_dir.exists():  # killed before its first checkpoint: start again from scratch
            shutil.rmtree(run_dir)
            summary["fresh_starts"] += 1
        target = None
        if summary["kills"] < kills:  # a phase still ahead of this attempt, so it cannot finish unkilled
            ahead = phases_ahead(done, steps, save_every, eval_every)
            choice = {p: w for p, w in aim.items() if ahead.get(p, 0) > 0} or {"startup": 1}
            phase = rng.choices(list(choice), weights=list(choice.values()))[0]
            nth = rng.randrange(min(3, ahead[phase]))
            target = (phase, nth, rng.uniform(0.0, dur.get(phase, 0.05)))
        summary["attempts"] += 1
        before = set(leftovers(run_dir))
        proc, att, reader = spawn(argv, work / f"attempt-{summary['attempts']:02d}.log", tools, nproc)
        if target:
            phase, nth, delay = target
            while proc.poll() is None and phase != "startup" and att.begins(phase) <= nth:
                time.sleep(0.001)
            if proc.poll() is None:
                time.sleep(delay)
                if proc.poll() is None:
                    victim = kill_one(proc, nproc, rng)
                    att.killed = victim is not None
        if att.killed and nproc > 1:  # the other ranks must stop too, in bounded time, not hang
            t_kill = time.monotonic()
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                summary["hangs"] += 1
                for pid in [proc.pid, *children(proc.pid)]:
                    _sigkill(pid)
            summary["stop_s"] = max(summary["stop_s"], time.monotonic() - t_kill)
        att.rc = proc.wait()
        reader.join()
        expected = None if done is None else str(run_dir / "checkpoints" / f"step-{done:06d}")
        got = att.resumed_from()
        if (got[0] if got else None) != expected and not (att.killed and got is None):
            summary["bad_resume"].append(f"attempt {summary['attempts']}: expected {expected}, printed {got}")
        if att.killed:
            summary["kills"] += 1
            if tools:
                summary["sandbox_survivors"] += sandbox_survivors()
            where = att.phase()
            summary["by_phase"][where] = summary["by_phase"].get(where, 0) + 1
            new = sorted(set(leftovers(run_dir)) - before)
            summary["half_written"] += bool(new)
            summary["torn_lines"] += bool(torn(run_dir))
            say(f"kill {summary['kills']:2d}: aimed at {target[0]} #{target[1]} +{target[2] * 1000:.0f} ms, "
                f"landed in {where}; newest checkpoint now step {latest_step(run_dir)}"
                + (f"; left {', '.join(new)}" if new else "")
                + (f"; torn last line in {', '.join(torn(run_dir))}" if torn(run_dir) else ""), flush=True)
            continue
        if att.rc != 0:
            log = work / f"attempt-{summary['attempts']:02d}.log"
            raise SystemExit(f"kill_test: attempt {summary['attempts']} failed (exit {att.rc}); see {log}")
        break
    summary.update(compare(ref_dir, run_dir))
    summary["leftovers_at_end"] = leftovers(run_dir)
    summary["weights_moved"] = moved(work / "tiny", ref_dir / "final")
    summary["tool_calls"] = sum(r.get("tools/calls_per_completion", 0.0) for r in rows(ref_dir / "metrics.jsonl"))
    summary["wall_s"] = time.monotonic() - t_start
    summary["work"] = str(work)
    summary["ok"] = (summary["kills"] >= kills and not summary["differing_tensors"] and summary["metrics_equal"]
                     and summary["samples_equal"] and not summary["duplicated"] and not summary["missing"]
                     and not summary["bad_resume"] and not summary["leftovers_at_end"]
                     and not summary["sandbox_survivors"] and (summary["tool_calls"] > 0 or not tools)
                     and not summary["hangs"] and summary["weights_moved"])
    return summary


def report(s: dict) -> None:
    def yes(x: bool) -> str:
        return "yes" if x else "NO"

    lines = [
        ("kills", f"{s['kills']} (attempts {s['attempts']})"),
        ("resumes (--resume)", str(s["resumes"])),
        ("fresh starts (no checkpoint yet)", str(s["fresh_starts"])),
        ("kills by phase", ", ".join(f"{p} {n}" for p, n in sorted(s["by_phase"].items(), key=lambda x: -x[1]))),
        ("kills leaving a half-written folder", str(s["half_written"])),
        ("kills leaving a torn jsonl line", str(s["torn_lines"])),
        ("every resume from newest checkpoint", yes(not s["bad_resume"])),
        ("training moved the weights", yes(s["weights_moved"])),
        ("identical final weights", f"{yes(not s['differing_tensors'])} ({s['tensors'] - len(s['differing_tensors'])}"
                                    f"/{s['tensors']} tensors torch.equal)"),
        ("metrics.jsonl match", f"{yes(s['metrics_equal'])} ({s['metrics_rows'][1]} rows vs {s['metrics_rows'][0]}; "
                                f"duplicated {s['duplicated'] or 'none'}, missing {s['missing'] or 'none'})"),
        ("samples.jsonl match", yes(s["samples_equal"])),
        ("temp folders left at the end", ", ".join(s["leftovers_at_end"]) or "none"),
        ("tool calls per completion, summed over steps", f"{s['tool_calls']:.2f}"),
        ("sandboxed processes surviving a kill", str(s["sandbox_survivors"])),
        ("runs hung after a rank was killed", f"{s['hangs']} (slowest stop {s['stop_s']:.1f} s)"),
        ("wall time", f"{s['wall_s']:.1f} s"),
    ]
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"  {k:<{width}}  {v}")
    for b in s["bad_resume"]:
        print(f"  bad resume: {b}")
    if not s["metrics_equal"]:
        print(f"  first differing metrics row: line {s['first_metrics_diff'] + 1}; extra rows {s['extra'] or 'none'}")
    if s["differing_tensors"]:
        print(f"  differing tensors: {', '.join(s['differing_tensors'][:5])}")
    print("PASS" if s["ok"] else "FAIL")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=20, help="SIGKILLs before the run is let finish")
    ap.add_argument("--steps", type=int, default=30, help="RL steps of the run")
    ap.add_argument("--save-every", type=int, default=2, help="steps between checkpoints")
    ap.add_argument("--eval-every", type=int, default=3, help="steps between held-out evaluations")
    ap.add_argument("--seed", type=int, default=0, help="seeds the kill schedule (the run's own seed is fixed)")
    ap.add_argument("--work", type=Path, default=None, help="folder for the runs (default: a new temp folder, kept)")
    ap.add_argument("--tools", action="store_true", help="multi-turn rollouts: every completion calls the Python tool")
    ap.add_argument("--nproc", type=int, default=1, help="data-parallel ranks (torchrun); a kill hits one rank at random")
    args = ap.parse_args()
    s = run(args.kills, args.steps, args.save_every, args.eval_every, args.seed, args.work, tools=args.tools,
            nproc=args.nproc)
    report(s)
    print(f"runs in {s['work']}")
    return 0 if s["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

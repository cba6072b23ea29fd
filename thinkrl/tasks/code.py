"""Code tasks: a completion's code runs in the sandbox against the problem's tests.

A code problem holds its tests in `meta["tests"]` (Python statements, each an assertion or a call
that asserts, such as HumanEval's `check(candidate)`) and, in `meta["prefix"]`, code run before the
completion's (HumanEval's prompt: imports and helpers). `answer` is a reference solution (the
accuracy reward needs a non-empty one; tests check that it passes).

The verifier: `score` is 1 when every test passes (what eval's pass@k counts), `partial` the share
of tests passed (`[rewards] code_mode = "share"`), `outcomes` the verdict of each completion (pass,
wrong, crash, syntax_error, timeout, no_code: thinkrl.tasks.code_harness) for the metrics. Each
completion's code and tests run as ONE sandbox execution (thinkrl.sandbox, a separate isolated
process: model-written code never runs in this one); `score_batch` runs the rows of a batch in
parallel through a pool of `workers` that stays alive for the task's life, and every result is
remembered by (problem, code), so the rewards of a step that read the verifier again (accuracy,
length rewards) and identical code in a group do not run it twice.
"""

from __future__ import annotations

from collections import OrderedDict

from thinkrl.errors import UserError
from thinkrl.tasks.base import Problem, Task
from thinkrl.tasks.code_harness import Outcome, extract_code, harness, read_outcome

MEMO_SIZE = 16_384  # remembered (problem, code) results; a step holds a few hundred


class CodeTask(Task):
    """A task whose verifier runs code (subclasses: thinkrl.tasks.codegen, thinkrl.tasks.humaneval)."""

    name = "code"

    def __init__(self, timeout_s: float = 5.0, workers: int = 4, memory_mb: int = 512):
        self.timeout_s, self.workers, self.memory_mb = timeout_s, workers, memory_mb
        self._pool = None
        self._memo: OrderedDict[tuple[str, str], Outcome] = OrderedDict()

    # --- the verifier -------------------------------------------------------------------------
    def extract(self, completion: str) -> str | None:
        return extract_code(completion)

    def vote_key(self, answer: str) -> str:
        return "\n".join(line.rstrip() for line in answer.strip().splitlines() if line.strip())

    def score(self, completion: str, problem: Problem) -> float:
        return float(self.run([completion], [problem])[0].verdict == "pass")

    def score_batch(self, completions: list[str], problems: list[Problem]) -> list[float]:
        return [float(o.verdict == "pass") for o in self.run(completions, problems)]

    def partial(self, completion: str, problem: Problem) -> float:
        return self.run([completion], [problem])[0].share

    def outcomes(self, completions: list[str], problems: list[Problem]) -> list[str]:
        return [o.verdict for o in self.run(completions, problems)]

    # --- running --------------------------------------------------------------------------------
    def program(self, code: str, problem: Problem) -> str:
        """The source that is run: the problem's prefix, then the completion's code."""
        prefix = problem.meta.get("prefix", "")
        return f"{prefix}\n{code}" if prefix else code

    def run(self, completions: list[str], problems: list[Problem]) -> list[Outcome]:
        """The Outcome of each completion on its problem; unseen (problem, code) pairs run in the
        sandbox, in parallel, one execution each."""
        keys = []
        for c, p in zip(completions, problems):
            code = self.extract(c)
            keys.append((p.id, code))
        todo = {k: p for k, p in zip(keys, problems) if k[1] is not None and k not in self._memo}
        if todo:
            self._execute(todo)
        out = []
        for key, p in zip(keys, problems):
            if key[1] is None:
                out.append(Outcome("no_code", 0, len(p.meta["tests"])))
            else:
                self._memo.move_to_end(key)
                out.append(self._memo[key])
        return out

    def _execute(self, todo: dict[tuple[str, str], Problem]) -> None:
        programs = [harness(self.program(code, p), p.meta["tests"]) for (_, code), p in todo.items()]
        results = self.pool().map([prog for prog, _ in programs])
        for (key, p), (_, nonce), r in zip(todo.items(), programs, results):
            if r.status == "refused":
                raise UserError(f"the sandbox refused to run code for task '{self.name}': {r.message}")
            self._memo[key] = read_outcome(r.status, r.stdout, nonce, len(p.meta["tests"]), r.message)
        while len(self._memo) > MEMO_SIZE:
            self._memo.popitem(last=False)

    def pool(self):
        """The sandbox pool, made on first use and kept for the task's life."""
        if self._pool is None:
            from thinkrl.sandbox import Limits, Pool  # noqa: PLC0415 - the sandbox only when code runs

            limits = Limits(cpu_s=self.timeout_s, wall_s=self.timeout_s, memory_mb=self.memory_mb)
            self._pool = Pool(self.workers, limits)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def outcome_counts(verdicts: list[str], prefix: str) -> dict[str, float]:
    """{prefix/verdict: count} over some verdicts (every verdict but pass, which accuracy shows)."""
    out: dict[str, float] = {}
    for v in verdicts:
        if v != "pass":
            out[f"{prefix}/{v}"] = out.get(f"{prefix}/{v}", 0) + 1
    return out

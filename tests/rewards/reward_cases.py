"""What the tests of thinkrl.rewards share: a task, one of its problems and the info a reward gets."""

from thinkrl import rewards as R
from thinkrl.tasks import TaskConfig, get_task

TASK = get_task(TaskConfig(name="arithmetic", digits="2,1", ops="*", num_eval=10, num_train=10))
PROBLEM = TASK.problems("eval")[0]
INFO = {"task": TASK, "problem": PROBLEM, "tokens": 10, "finish_reason": "eos", "max_new_tokens": 64}
GOOD = f"<think>I multiply.</think> <answer>{PROBLEM.answer}</answer>"


def _info(problem, task=TASK):
    return {**INFO, "task": task, "problem": problem}


def _score(rewards, texts, timeout=5.0):
    stats = {}
    out = R.score_batch(rewards, texts, [_info(PROBLEM) for _ in texts], timeout=timeout, stats=stats)
    return [p for p, _ in out], [t for _, t in out], stats

"""Cost of scoring one rollout batch: 256 completions x 3 rule rewards (issue 7, reward guards).

Prints the median time of `score_batch` for the built-in rewards (accuracy, format, tag_count)
and for the same three functions given as user rewards (which run in a worker thread under
`rewards.timeout`). Run: `python benchmarks/reward_overhead.py`."""
import inspect
import statistics
import time

from thinkrl import rewards as R
from thinkrl.tasks import TaskConfig, get_task

task = get_task(TaskConfig(name="arithmetic", digits="2,1", ops="*", num_eval=64, num_train=10))
problems = task.problems("eval")
completions, infos = [], []
for i in range(256):
    p = problems[i % len(problems)]
    answer = p.answer if i % 2 else str(int(p.answer) + 1)
    text = f"<think>I multiply the numbers step by step, {i}.</think> <answer>{answer}</answer>" if i % 3 else f"just {answer}"
    completions.append(text)
    infos.append({"task": task, "problem": p, "tokens": 20, "finish_reason": "eos", "max_new_tokens": 64})

builtin = R.build(R.RewardConfig(accuracy=1.0, format=1.0, tag_count=1.0))


def plain(fn):  # the same function without the built-in mark: scored like a user's reward
    return lambda c, r, info: fn(c, r, info)


custom = [(f"custom_{name}", w, plain(fn)) for name, w, fn in builtin]
timed = "timeout" in inspect.signature(R.score_batch).parameters


def median_ms(rewards, repeats=100, **kw):
    R.score_batch(rewards, completions, infos, **kw)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        R.score_batch(rewards, completions, infos, **kw)
        times.append(time.perf_counter() - t)
    return f"median {1000 * statistics.median(times):.2f} ms, min {1000 * min(times):.2f} ms"


print(f"built-in, 256 x 3: {median_ms(builtin, **({'timeout': 10.0} if timed else {}))}")
if timed:
    print(f"as user rewards, timeout 0 (called inline): {median_ms(custom, timeout=0.0)}")
    print(f"as user rewards, timeout 10 s (worker thread): {median_ms(custom, timeout=10.0)}")
else:
    print(f"as user rewards (before: called inline): {median_ms(custom)}")

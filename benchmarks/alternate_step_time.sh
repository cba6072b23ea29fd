#!/bin/bash
# CPU step time of the default recipe, two checkouts in alternating runs (A B A B ...), so a slow
# phase of the machine hits both sides. Per-step times come from each run's metrics.jsonl.
#   bash benchmarks/alternate_step_time.sh BEFORE_TREE AFTER_TREE [PAIRS] [STEPS]
# e.g. git worktree add /tmp/before <commit>; bash benchmarks/alternate_step_time.sh /tmp/before "$PWD"
set -u
before=$1 after=$2 pairs=${3:-3} steps=${4:-4}
py=${PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
out=$(mktemp -d /tmp/alt.XXXX)
for i in $(seq "$pairs"); do
  for side in before after; do
    tree=$before; [ "$side" = after ] && tree=$after
    (cd "$tree" && PYTHONPATH="$tree" "$py" -m thinkrl rl recipes/r1_zero.toml --steps "$steps" --out-dir "$out/$side$i" \
      --set eval.limit=0 --set save_every=0 --set sample_every=0 > "$out/$side$i.log" 2>&1)
  done
done
"$py" - "$out" "$pairs" <<'PY'
import json, statistics, sys
out, pairs = sys.argv[1], int(sys.argv[2])
def steps(run):  # step 1 warms up
    return [m for m in map(json.loads, open(f"{out}/{run}/metrics.jsonl")) if "time/step" in m][1:]
for key in ("time/step", "time/generate", "time/update"):
    b = {i: [m[key] for m in steps(f"before{i}")] for i in range(1, pairs + 1)}
    a = {i: [m[key] for m in steps(f"after{i}")] for i in range(1, pairs + 1)}
    ratios = [round(sum(a[i]) / sum(b[i]), 3) for i in b]
    print(f"{key}: median before {statistics.median(sum(b.values(), [])):.2f} s, after "
          f"{statistics.median(sum(a.values(), [])):.2f} s; pair ratios after/before {ratios}")
PY

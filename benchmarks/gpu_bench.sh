#!/usr/bin/env bash
# Every issue-21 figure on one GPU, in one go, in about 8 minutes on an H100/H200 (from the repo root):
#
#     bash benchmarks/gpu_bench.sh                  # results in $RESULTS (default benchmarks/gpu_results/)
#     GPU_BENCH_TINY=1 bash benchmarks/gpu_bench.sh # the same stages at tiny shapes: a CPU dry run (~2-4 min)
#
# Stages (each under its own time limit, cut to what is left of BUDGET_S; a failed stage leaves the others):
#  1. the CUDA tests alone (`pytest -m cuda`: tests that skip without CUDA, marked by tests/conftest.py);
#  2. `thinkrl bench` train, default fast settings (FAST_SETS), with TRL 1.16's GRPOTrainer beside it when
#     trl and datasets import; then with TRL's settings (+ gradient checkpointing), then with the engine
#     released before each update: step time, MFU, peak memory, phase peaks, KV cache and graph pool;
#  3. decode at batch 64 and 256;
#  4. the log-prob mismatch, engine vs training forward, on the real embedded model in bf16 over one
#     rollout of the demo recipe (`thinkrl rl recipes/r1_zero.toml`, 1 step, no evaluation);
#  5. the demo recipe itself (40 steps, held-out before and after) with its step-time breakdown;
#  6. a torch.profiler table of one bench step (top kernels by device time; operators by CPU time on CPU);
#  7. one summary table of all figures against issue 21's targets (thinkrl.bench_summary), also in
#     $RESULTS/summary.md.
# Environment: PYTHON (default python3), RESULTS, BUDGET_S (default 540), FAST_SETS (bench --set flags of the
# fast path), SKIP_TESTS=1, SKIP_TRL=1, SKIP_DEMO=1, SKIP_PROFILE=1, SKIP_RELEASE=1.
set -uo pipefail
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error TQDM_DISABLE=1

RESULTS="${RESULTS:-benchmarks/gpu_results}"
PY="${PYTHON:-python3}"
TINY="${GPU_BENCH_TINY:-}"
BUDGET_S="${BUDGET_S:-540}"
RUNS="${RUNS_DIR:-/tmp/thinkrl-gpu-bench-runs}"
mkdir -p "$RESULTS" "$RUNS"
rm -f "$RESULTS"/*.json "$RESULTS"/summary.md
T0=$(date +%s)
# the training fast path's settings (README, [algo]): chunked LM head, length-bucketed micro-batches
read -r -a FAST <<< "${FAST_SETS:---set algo.logprob_chunk=4096 --set algo.bucket_by_length=true}"
if [ -n "$TINY" ]; then  # tiny shapes, one timed step, the graph runner's code (no graphs on CPU): seconds each
    SHAPE=(--shape tiny --warmup 1 --steps 1 --set runner=graph); B64=(--batch 4); B256=(--batch 8)
    RECIPE_SMALL=(--set prompts_per_step=2 --set group_size=4 --set sampling.max_new_tokens=16)
    DEMO_SETS=("${RECIPE_SMALL[@]}" --set steps=2 --set eval.limit=8 --set eval.sampling.max_new_tokens=16)
else
    SHAPE=(); B64=(--batch 64); B256=(--batch 256); RECIPE_SMALL=(); DEMO_SETS=()
fi

# stage NAME LIMIT_S CMD...: run CMD under min(LIMIT_S, time left), its output to $RESULTS/NAME.log and shown
stage() {
    local name=$1 limit=$2; shift 2
    local left=$(( BUDGET_S - ($(date +%s) - T0) ))
    (( left < limit )) && limit=$left
    if (( limit < 10 )); then echo "=== $name: skipped, the budget of ${BUDGET_S}s is spent"; return 1; fi
    echo; echo "=== [t=$(( $(date +%s) - T0 ))s] $name (limit ${limit}s)"
    timeout "$limit" "$@" > "$RESULTS/$name.log" 2>&1
    local rc=$?
    grep -v -E "it/s\]$|s/it\]$" "$RESULTS/$name.log" | tail -n 40 | cut -c1-220
    echo "--- $name: rc=$rc"
    return $rc
}
BENCH=("$PY" -m thinkrl.cli bench "${SHAPE[@]}")  # an array, not a function: `timeout` runs programs only

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
"$PY" - <<'EOF'
import torch, transformers
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device: the CPU shapes run"
try:
    import datasets, trl
    trl = f"trl {trl.__version__}, datasets {datasets.__version__}"
except Exception as e:  # noqa: BLE001 (what is missing is printed, the run goes on without TRL)
    trl = f"no trl/datasets ({type(e).__name__}: {e})"
print(f"torch {torch.__version__}, transformers {transformers.__version__}, {trl}, {gpu}")
EOF

status=0
if [ -z "${SKIP_TESTS:-}" ]; then
    stage cuda_tests 150 "$PY" -m pytest -q -p no:cacheprovider -m cuda --continue-on-collection-errors tests
    rc=$?; echo "{\"rc\": $rc}" > "$RESULTS/cuda_tests.json"
    # pytest's 5 = nothing selected: no CUDA test exists, which is a failure of the selection too
    (( rc != 0 )) && { echo "CUDA tests failed: fix them before trusting any figure below"; status=1; }
fi
VS_TRL=()
if [ -z "${SKIP_TRL:-}" ] && "$PY" -c "import trl, datasets" 2>/dev/null; then VS_TRL=(--vs-trl); else
    echo "trl or datasets not importable (or SKIP_TRL): the GRPO step runs without TRL beside it"; fi
stage train_fast 240 "${BENCH[@]}" --mode train "${FAST[@]}" "${VS_TRL[@]}" --out "$RESULTS/train_fast.json" || status=1
stage decode_64 60 "${BENCH[@]}" --mode decode "${B64[@]}" --out "$RESULTS/decode_64.json" || status=1
stage decode_256 60 "${BENCH[@]}" --mode decode "${B256[@]}" --out "$RESULTS/decode_256.json" || status=1
stage train_gc 90 "${BENCH[@]}" --mode train "${FAST[@]}" --set algo.gradient_checkpointing=true --out "$RESULTS/train_gc.json" || status=1
# the real embedded model (SmolLM2-135M; converted into THINKRL_CACHE once, ~40 s): one rollout, bf16
if [ -z "${SKIP_DEMO:-}" ]; then
    rm -rf "$RUNS/mismatch" "$RUNS/demo"
    stage mismatch_run 150 "$PY" -m thinkrl rl recipes/r1_zero.toml --set model.dtype=bfloat16 --set steps=1 \
        --set eval.limit=0 --set save_every=0 --set sample_every=0 --set "out_dir=$RUNS/mismatch" "${RECIPE_SMALL[@]}" \
        && "$PY" -m thinkrl.bench_summary run "$RUNS/mismatch" "$RESULTS/mismatch.json" > /dev/null || status=1
    stage demo 200 "$PY" -m thinkrl rl recipes/r1_zero.toml --set "out_dir=$RUNS/demo" "${DEMO_SETS[@]}" \
        && "$PY" -m thinkrl.bench_summary run "$RUNS/demo" "$RESULTS/demo.json" > /dev/null || status=1
fi
[ -z "${SKIP_PROFILE:-}" ] && { stage profile 90 "${BENCH[@]}" --mode profile "${FAST[@]}" --out "$RESULTS/profile.json" || status=1; }
[ -z "${SKIP_RELEASE:-}" ] && { stage train_release 90 "${BENCH[@]}" --mode train "${FAST[@]}" --set release_engine=true \
    --out "$RESULTS/train_release.json" || status=1; }

echo; echo "=== [t=$(( $(date +%s) - T0 ))s] summary (issue 21's targets)"
"$PY" -m thinkrl.bench_summary table "$RESULTS" || status=1
exit "$status"

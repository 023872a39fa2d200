#!/usr/bin/env bash
# A shorter second pass on a lent GPU: the GPU tests and the CUDA-graph table only.
set -uo pipefail
OUT=${OUT:-/tmp/out}
export PYTHONUNBUFFERED=1 HARNESS_PLUGINS=harness
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir \
  --target /tmp/site .whl/*.whl . || exit 1
export PYTHONPATH=/tmp/site
python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -8 | tee "$OUT/gpu_tests.txt"
python3 benchmarks/gpu_bench.py --modes graphs --pack 0 --rounds 3 --out "$OUT" 2>&1 | tee "$OUT/bench.txt"

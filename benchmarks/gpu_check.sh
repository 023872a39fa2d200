#!/usr/bin/env bash
# The one prepared script for a lent GPU machine (see BENCHMARKS.md). It installs the
# project without dependencies (the machine has torch, pandas, pluggy...; wheels for what
# it lacks travel in .whl/), runs the GPU tests, checks that cuda cells run end to end,
# and measures the harness against hand-written loops on the card. Output lands in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}
export PYTHONUNBUFFERED=1 HARNESS_PLUGINS=harness
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir \
  --target /tmp/site .whl/*.whl . || exit 1
export PYTHONPATH=/tmp/site
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -15 | tee "$OUT/gpu_tests.txt"
python3 -m harness run -m regression,classification,cnn,lstm,rnn-regression,autoencoder,dropout,batchnorm \
  -o sgd,adam -d cpu,cuda -s 0 --steps 100 --out "$OUT/run" --quiet 2>&1 | tail -20 | tee "$OUT/run.txt"
python3 benchmarks/gpu_bench.py --out "$OUT" 2>&1 | tee "$OUT/bench.txt"
rm -rf "$OUT/run/cells" "$OUT/run/"*.parquet

#!/usr/bin/env bash
# The one prepared script for a lent GPU machine (see BENCHMARKS.md). It installs the
# project without dependencies (the machine has torch, pandas, pluggy...; mlxtend is
# carried as a wheel in .whl/), checks that cuda cells run end to end, and measures the
# harness against a hand-written loop on the card. Everything lands in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}
export PYTHONUNBUFFERED=1 HARNESS_PLUGINS=harness
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir --target /tmp/site \
  .whl/*.whl . || exit 1
export PYTHONPATH=/tmp/site
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"
python3 -m harness list
python3 -m harness run -m regression,classification,cnn,lstm,rnn-regression,autoencoder,dropout,batchnorm \
  -o sgd,adam -d cpu,cuda -s 0 --steps 100 --out "$OUT/run" --quiet 2>&1 | tee "$OUT/run.txt"
python3 benchmarks/harness_vs_loop.py --device cuda --models cnn,lstm,regression,autoencoder \
  --steps 300 --warmup 30 --rounds 5 --markdown --json "$OUT/gpu_bench.json" 2>&1 | tee "$OUT/bench.txt"
rm -rf "$OUT/run/cells" "$OUT/run/"*.parquet

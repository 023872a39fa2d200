#!/usr/bin/env bash
# The one prepared script for a lent GPU machine (see BENCHMARKS.md). It installs the
# project without dependencies (the machine has torch, pandas, pluggy...; wheels for what
# it lacks travel in .whl/), then:
#   1. packing through the harness, 8 eager cnn cells against 1, plain and (where the
#      machine has NVIDIA MPS) under --cuda-mps: 2 alternating rounds each, GPU busy %
#      sampled (~4.5 min);
#   2. the GPU tests, failures with their tracebacks (~1 min);
#   3. the harness against hand-written loops, eager and whole-step CUDA graphs (~2 min),
#      so that one call re-checks all three of issue 6's GPU targets;
#   4. while time remains: plain processes packed the same way, with and without MPS;
#      packing with --cudnn-benchmark; cuda cells end to end; the CUDA-graph step taken
#      apart.
# Run it under `timeout 560`: what finished is in $OUT/gpu.log, JSON in $OUT/pack and
# $OUT/bench.
set -uo pipefail
OUT=${OUT:-/tmp/out}
export PYTHONUNBUFFERED=1 HARNESS_PLUGINS=harness
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir \
  --target /tmp/site .whl/*.whl . || exit 1
export PYTHONPATH=/tmp/site
mkdir -p "$OUT/pack/cudnn" "$OUT/bench"
exec > >(tee "$OUT/gpu.log") 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_mode --format=csv
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
lscpu | grep -E "^(Model name|CPU\(s\)|Thread|Core|Socket|NUMA node)"
MPS=$(python3 -c "from harness.run import cuda_mps; print(cuda_mps.find_control() or '')")
echo "MPS control: ${MPS:-none on this machine}"
VARIANTS=(--pack-variant=)
CUDNN=(--pack-variant=--cudnn-benchmark)
HAND_MPS=()
if [ -n "$MPS" ]; then
  VARIANTS+=(--pack-variant=--cuda-mps)
  CUDNN+=("--pack-variant=--cuda-mps --cudnn-benchmark")
  HAND_MPS=(--cuda-mps)
fi
# GPU utilisation (share of time a kernel ran) sampled every 100 ms while cells are packed.
nvidia-smi --query-gpu=timestamp,utilization.gpu,clocks.sm,power.draw --format=csv,noheader \
  -lms 100 > "$OUT/pack/gpu_util.csv" 2>/dev/null & SMI=$!
python3 benchmarks/gpu_bench.py --modes none --pack-steps 8000 --pack-rounds 2 "${VARIANTS[@]}" \
  --out "$OUT/pack"
kill $SMI 2>/dev/null
python3 benchmarks/gpu_util.py "$OUT/pack/gpu_bench.json" "$OUT/pack/gpu_util.csv"
python3 -m pytest -q -p no:cacheprovider --tb=short -W ignore tests/test_gpu.py 2>&1 | tail -80
python3 benchmarks/gpu_bench.py --pack 0 --out "$OUT/bench"
python3 benchmarks/pack_hand.py --n 8 --kinds cnn-synced --steps 8000 "${HAND_MPS[@]}" \
  --out "$OUT/pack"
python3 benchmarks/gpu_bench.py --modes none --pack-steps 8000 "${CUDNN[@]}" --out "$OUT/pack/cudnn"
python3 -m harness run -m regression,classification,cnn,lstm,rnn-regression,autoencoder,dropout,batchnorm \
  -o sgd,adam -d cpu,cuda -s 0 --steps 100 --out "$OUT/run" --quiet 2>&1 | tail -20
python3 -c "import pandas as pd; s = pd.read_csv('$OUT/run/summary.csv'); print(s.groupby('device').status.value_counts())"
rm -rf "$OUT/run"
python3 benchmarks/graph_ablation.py --profile --out "$OUT"

#!/usr/bin/env bash
# GPU checks of the encoder in one call of the device tool (results under $OUT):
#   1. tests/test_encode_gpu.py (CUDA vs CPU, bf16, pinned memory, reruns identical)
#   2. benchmarks/bench_encode.py --device cuda   -> $OUT/encode_cuda.json
#   3. benchmarks/bench_encode.py --device cpu on the GPU machine's CPU cores (worker sweep)
# Wheels the GPU machine lacks can be put in .whl/ (gitignored); they are installed with
# --no-deps into /tmp/site. Each step has its own time limit so one failure does not eat the rest.
set -u
OUT=${OUT:-/tmp/device_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl > "$OUT/pip.log" 2>&1
  export PYTHONPATH="/tmp/site:$PWD"
fi
export OMP_WAIT_POLICY=PASSIVE TQDM_DISABLE=1
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
nproc > "$OUT/nproc.txt"
echo "== gpu tests"
if python3 -c "import pytest" 2> /dev/null; then
  timeout "${GPU_TEST_S:-150}" python3 -m pytest -q -s -p no:cacheprovider --noconftest -o addopts="" tests/test_encode_gpu.py 2>&1 | tail -30 | tee "$OUT/gpu_tests.txt"
else
  timeout "${GPU_TEST_S:-150}" python3 tests/test_encode_gpu.py 2>&1 | tail -40 | tee "$OUT/gpu_tests.txt"
fi
echo "== cuda benchmark"
timeout "${CUDA_BENCH_S:-240}" python3 benchmarks/bench_encode.py --device cuda --workdir /tmp/bw \
  --out "$OUT/encode_cuda.json" > "$OUT/cuda.log" 2>&1
echo "rc=$?"; tail -c 3000 "$OUT/cuda.log"
echo "== cpu benchmark on this machine's cores"
timeout "${CPU_BENCH_S:-150}" python3 benchmarks/bench_encode.py --device cpu --quick \
  --workers "${CPU_WORKERS:-auto,0,4}" --workdir /tmp/bw --out "$OUT/encode_cpu_gpuhost.json" > "$OUT/cpu.log" 2>&1
echo "rc=$?"; grep -o '"model[^}]*ratio_loop": [0-9.]*' "$OUT/cpu.log" | cut -c1-300

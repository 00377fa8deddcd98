#!/usr/bin/env bash
# Every GPU check of the encoder (issue 17) in one call of the device tool; results under $OUT.
# Prepared on a CPU-only machine and not yet run on a GPU: nothing here is a measured result.
#
#   0. environment: nvidia-smi, torch/torchvision versions, whether decode_jpeg runs on CUDA
#   1. tests: tests/test_encode_gpu.py (CUDA vs CPU, bf16, pinned memory, reruns identical)
#      and tests/test_encode_fast_path.py (JPEG hand-over, channels-last, compile fallback)
#   2. ViT-B/16 and ViT-L/16 (the presets' 'vit' architecture, random weights), bf16,
#      end to end vs pure forward, tiles/s, GPU JPEG decode ON, torch.compile off,
#      plus patient-level bf16-vs-fp32 agreement          -> $OUT/encode_cuda_decode_on.json
#   3. the same with GPU JPEG decode OFF (CPU readers)       -> $OUT/encode_cuda_decode_off.json
#   4. ViT-B/16 with torch.compile ON (decode on)            -> $OUT/encode_cuda_compile.json
#   5. summary lines: ratio end-to-end / forward per run (target >= 0.85), agreement
#
# Budget: about 9 minutes of device time in all (each step has its own limit, so a failing
# step does not eat the rest); set STEP_S=... to scale. Wheels the GPU machine lacks (e.g. the
# torchvision matching its torch, for decode_jpeg on CUDA) can be put in .whl/ (gitignored);
# they are installed with --no-deps into /tmp/site.
set -u
OUT=${OUT:-/tmp/device_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl > "$OUT/pip.log" 2>&1
  export PYTHONPATH="/tmp/site:$PWD"
fi
export OMP_WAIT_POLICY=PASSIVE TQDM_DISABLE=1
W=/tmp/bw
B="python3 benchmarks/bench_encode.py --device cuda --workdir $W --memory-models="
echo "== environment"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
nproc > "$OUT/nproc.txt"
timeout 60 python3 - << 'EOF' 2>&1 | tee "$OUT/env.txt"
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available())
try:
    import torchvision
    from torchvision.io import decode_jpeg
    import numpy as np, io
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(buf, "JPEG")
    t = decode_jpeg([torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)], device="cuda")
    print("torchvision", torchvision.__version__, "decode_jpeg on cuda:", tuple(t[0].shape), t[0].device)
except Exception as err:
    print("GPU JPEG decode unavailable:", type(err).__name__, err)
EOF
echo "== tests"
timeout "${TEST_S:-150}" python3 -m pytest -q -p no:cacheprovider -o addopts="" \
  tests/test_encode_gpu.py tests/test_encode_fast_path.py 2>&1 | tail -30 | tee "$OUT/gpu_tests.txt"
echo "== ViT-B/16, ViT-L/16 bf16, GPU decode on, + bf16 vs fp32"
timeout "${STEP_S:-170}" $B --models vitb16,vitl16 --pairs 5 --gpu-decode on --agreement \
  --note "device_encode.sh step 2" --out "$OUT/encode_cuda_decode_on.json" > "$OUT/decode_on.log" 2>&1
echo "rc=$?"; tail -c 1500 "$OUT/decode_on.log"
echo "== GPU decode off"
timeout "${STEP_S:-170}" $B --models vitb16,vitl16 --pairs 5 --gpu-decode off \
  --note "device_encode.sh step 3" --out "$OUT/encode_cuda_decode_off.json" > "$OUT/decode_off.log" 2>&1
echo "rc=$?"; tail -c 800 "$OUT/decode_off.log"
echo "== torch.compile on (ViT-B/16)"
timeout "${STEP_S:-170}" $B --models vitb16 --pairs 5 --gpu-decode on --compile on \
  --note "device_encode.sh step 4" --out "$OUT/encode_cuda_compile.json" > "$OUT/compile.log" 2>&1
echo "rc=$?"; tail -c 800 "$OUT/compile.log"
echo "== summary"
cat "$OUT"/decode_on.log "$OUT"/decode_off.log "$OUT"/compile.log 2> /dev/null \
  | grep -E '"kind": "(throughput|bf16_vs_fp32)"' \
  | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    if r["kind"] == "throughput":
        print(r["model"], "decode", r["gpu_decode"], "compile", r["compile"], "fwd", r["forward_tiles_per_s"],
              "e2e", r["end_to_end_loop_tiles_per_s"], "ratio", r["ratio_loop"], "(target 0.85)")
    else:
        print(r["model"], "bf16 vs fp32: min cosine", r["min_cosine"], "min pearson", r["min_pearson"])
' | tee "$OUT/summary.txt"

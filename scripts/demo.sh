#!/usr/bin/env bash
# Main job on its embedded default: simulate a trial with slides -> encode -> decode -> survival -> report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=${PYTHON:-python3}
OUT=${1:-demo_out}
exec "$PY" -m tario_clinical.cli demo --out "$OUT"

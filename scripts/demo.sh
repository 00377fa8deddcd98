#!/usr/bin/env bash
# Main job on its embedded default: simulate a trial with slides -> encode -> decode -> survival -> report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${1:-demo_out}
exec tario-clinical demo --out "$OUT"

#!/usr/bin/env bash
# The test suite (what CI runs). Fails when pytest collects no test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=${PYTHON:-python3}
"$PY" -m ruff check --quiet .
"$PY" -m ruff format --check --quiet .
set +e
"$PY" -m pytest -n 2 --dist loadfile -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$rc"

#!/usr/bin/env bash
# Runs the whole test suite in the project's own virtualenv (.venv), creating it on first use.
# Services: Redis and PostgreSQL on 127.0.0.1 (see README); real MNIST from $GRADQ_DATA_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.gradq-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[test,postgres,plot,web]'
  touch "$stamp"
fi
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# One command from a fresh clone to a real queued training run: installs gradq into .venv, then
# `gradq demo` starts a Redis (if none answers) and a worker, trains the notebook's schedule
# (lr 1.0 for 500 iterations, then 0.5 for 500) through the queue with live progress, prints the
# per-stage accuracy, and stops what it started. Data: $GRADQ_DATA_DIR if it holds MNIST, else
# downloaded and verified. Database: SQLite in ~/.local/share/gradq unless GRADQ_DATABASE_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
extras="postgres,plot"
command -v redis-server >/dev/null 2>&1 || extras="$extras,redis-server"
.venv/bin/python -m pip install --quiet -e ".[$extras]"
exec .venv/bin/gradq demo "$@"

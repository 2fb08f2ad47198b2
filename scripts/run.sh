#!/usr/bin/env bash
# Run opsloop locally: embedded PostgreSQL (unless DATABASE_URL is set), migrations, the dashboard
# and API on http://127.0.0.1:3000, the echo agent on :3001. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/opsloop dev "$@"

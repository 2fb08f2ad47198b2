#!/usr/bin/env bash
# Run the whole test suite against real PostgreSQL: OPSLOOP_TEST_DATABASE_URL when set (a server
# where a scratch database can be created), else the embedded server. Installs Debian's chromium
# for the browser tests when it is missing. Checks the import contracts and types first. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing Debian's chromium for the browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "warning: could not install chromium"
  else
    echo "warning: chromium is missing (apt-get install chromium); browser tests will be skipped"
  fi
fi
echo "==> import contracts (import-linter, pyproject.toml)"
.venv/bin/lint-imports --no-cache
echo "==> type check (mypy over opsloop/ and agents/, pyproject.toml)"
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"

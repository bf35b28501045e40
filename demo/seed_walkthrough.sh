#!/usr/bin/env bash
# The seed walkthrough (../../shared/seed/demo_commands.md) with pgcalm in place of
# docker compose + manage.py: set-up, Steps 1-3 and 6, and the index performance check,
# with the API watched by `pgcalm probe` (the seed's curl loop) while each migration runs.
#
# Usage: demo/seed_walkthrough.sh            (uses `pgcalm` from PATH)
#   ROWS=10000000 rows in large_email (the seed's figure), PORT=8001 for the API.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${ROWS:-10000000}
PORT=${PORT:-8001}
API="http://127.0.0.1:$PORT"
WORK=$(mktemp -d)
SERVE_PID=

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() {  # echo the command as one could paste it, then run it
  local a line='$'
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9_./:=@-]+$ ]]; then line+=" $a"; else line+=" ${a@Q}"; fi
  done
  echo "$line"; "$@"
}
cleanup() {
  [[ -n $SERVE_PID ]] && kill -TERM "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# The seed's Terminal 1 (a curl loop, one request a second, --max-time 3) is
# `pgcalm probe`: the same lines on a fixed schedule, and a summary per target.
under_watch() {  # command... : runs it while probing the API, then summarises
  local log="$WORK/probe.log"
  pgcalm probe "list=$API/list_large/" --interval 1s --timeout 3s >"$log" 2>&1 & local probe=$!
  sleep 1
  run "$@"
  sleep 1
  kill -TERM "$probe"; wait "$probe" 2>/dev/null || true
  sed 's/^/    [Terminal 1] /' "$log"
}

step "Setup: pgcalm up; pgcalm seed --large-count $ROWS --batch-size 10000"
run pgcalm up
run pgcalm migrate demoapp 0001 >/dev/null   # a rerun starts from the seed's state too
run pgcalm seed --large-count "$ROWS" --batch-size 10000 --truncate
pgcalm serve --port "$PORT" >"$WORK/serve.log" 2>&1 & SERVE_PID=$!
for _ in $(seq 50); do curl -fs "$API/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
head -1 "$WORK/serve.log"

step "Step 1: verify the current state"
run pgcalm showmigrations demoapp
printf '$ curl %s/list_large/ | head -c 200\n' "$API"; { curl -s "$API/list_large/" || true; } | head -c 200; echo ...  # head exits early: curl's 23
run pgcalm psql -c "SELECT 'small_email' as table, COUNT(*) FROM small_email UNION ALL SELECT 'large_email', COUNT(*) FROM large_email;"
run pgcalm psql -c "\d large_email"

step "Step 2: CREATE INDEX CONCURRENTLY while the API is watched"
under_watch pgcalm migrate demoapp 0002

step "Step 3: verify the index"
run pgcalm showmigrations demoapp
run pgcalm inspect large_email --estimate
run pgcalm psql -c "EXPLAIN ANALYZE SELECT * FROM large_email WHERE email = 'user1000000@example.com';"

step "Step 6: roll back, verify, re-apply under watch"
under_watch pgcalm migrate demoapp 0001
run pgcalm psql -c "\d large_email"
run pgcalm psql -c "EXPLAIN ANALYZE SELECT * FROM large_email WHERE email = 'user1000000@example.com';"
under_watch pgcalm migrate demoapp 0002
run pgcalm status

step "Done. The embedded PostgreSQL keeps running: \`pgcalm down\` stops it, \`pgcalm down --volumes\` deletes it."

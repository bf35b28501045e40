#!/usr/bin/env bash
# The seed walkthrough (../../shared/seed/demo_commands.md) with pgcalm in place of
# docker compose + manage.py: set-up, Steps 1-3, 5 and 6, and the index performance
# check, with the API watched by `pgcalm probe` (the seed's curl loop, plus writes: a
# read-only probe passes the risky build too) while each migration runs. Step 5 ("to
# demonstrate the difference") is `pgcalm lab --app-database`: the risky plain CREATE
# INDEX and the safe one, measured on this database's rows.
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
# `pgcalm probe`: the same lines on a fixed schedule, and a summary per target. It
# writes too (POST /add_large/): a plain CREATE INDEX blocks writes, not reads.
under_watch() {  # command... : runs it while probing the API, then summarises
  local log="$WORK/probe.log"
  pgcalm probe "list=$API/list_large/" "add=POST $API/add_large/" --interval 1s --timeout 3s >"$log" 2>&1 & local probe=$!
  sleep 1
  run "$@"
  sleep 1
  kill -TERM "$probe"; wait "$probe" 2>/dev/null || true
  sed 's/^/    [Terminal 1] /' "$log"
}

# Whether process $1 holds the socket listening on 127.0.0.1:$2 (/proc/net/tcp: the
# address in hex, state 0A = LISTEN, then the socket's inode among the process's fds).
owns_port() {
  local pid=$1 addr inode fd
  addr=$(printf '0100007F:%04X' "$2")
  for inode in $(awk -v a="$addr" '$2 == a && $4 == "0A" { print $10 }' /proc/net/tcp); do
    for fd in /proc/"$pid"/fd/*; do
      [[ $(readlink "$fd" 2>/dev/null) == "socket:[$inode]" ]] && return 0
    done
  done
  return 1
}

# The demo API, checked to be the one answering on $PORT: a server left from an earlier
# run (or anything else there) would answer the probes while this one failed to bind.
start_api() {
  pgcalm serve --port "$PORT" >"$WORK/serve.log" 2>&1 & SERVE_PID=$!
  for _ in $(seq 100); do
    grep -q "^Serving the demo app on" "$WORK/serve.log" && break
    kill -0 "$SERVE_PID" 2>/dev/null || break
    sleep 0.1
  done
  if ! kill -0 "$SERVE_PID" 2>/dev/null || ! owns_port "$SERVE_PID" "$PORT"; then
    echo "error: the pgcalm serve this script started (pid $SERVE_PID) is not the server on 127.0.0.1:$PORT:" >&2
    sed 's/^/  /' "$WORK/serve.log" >&2
    echo "  fix: stop what listens there (ss -ltnp 'sport = :$PORT' names it), or run with PORT=<a free port>" >&2
    SERVE_PID=
    exit 1
  fi
  for _ in $(seq 50); do curl -fs "$API/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  head -1 "$WORK/serve.log"
  echo "(pid $SERVE_PID, which holds 127.0.0.1:$PORT)"
}

step "Setup: pgcalm up; pgcalm seed --large-count $ROWS --batch-size 10000"
run pgcalm up
run pgcalm migrate demoapp 0001 >/dev/null   # a rerun starts from the seed's state too
run pgcalm seed --large-count "$ROWS" --batch-size 10000 --truncate
start_api

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

step "Step 5: demonstrate the difference: the risky plain CREATE INDEX vs CONCURRENTLY, reads and writes probed"
# In this database, on its rows: demoapp 0002 is rolled back first (its index has the
# risky form's name) and re-applied at the end; the lab's own demo API on free ports.
run pgcalm lab --app-database

step "Step 6: roll back, verify, re-apply under watch"
under_watch pgcalm migrate demoapp 0001
run pgcalm psql -c "\d large_email"
run pgcalm psql -c "EXPLAIN ANALYZE SELECT * FROM large_email WHERE email = 'user1000000@example.com';"
under_watch pgcalm migrate demoapp 0002
run pgcalm status

step "Done. The embedded PostgreSQL keeps running: \`pgcalm down\` stops it, \`pgcalm down --volumes\` deletes it."

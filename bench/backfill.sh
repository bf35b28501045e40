#!/usr/bin/env bash
# Backfilling large_email with a streaming replica attached, three ways, in one run:
#
#   unthrottled   `-- pgcalm:backfill batch_size=auto`, --max-replica-lag 0: one batch
#                 loop with no waits (the batch size adapts to 200 ms batches)
#   fixed delay   `-- pgcalm:backfill batch_size=$FIXED_BATCH delay=$DELAY`,
#                 --max-replica-lag 0: pgroll's approach (fixed batches, a fixed sleep)
#   lag-throttled `-- pgcalm:backfill batch_size=auto`, --max-replica-lag $MAX_LAG:
#                 before each batch the runner waits while the replica's replay lag
#                 (pg_stat_replication on the primary) is above the limit
#
# Setup: `pgcalm up --replica --pooler` (release build) in a scratch project, the demo's
# schema, `pgcalm seed --large-count $ROWS`, and `pgcalm serve` through PgBouncer
# (`pgcalm url --pooler`; direct when the pooler cannot serve it, and the table says
# so). Each mode backfills a new column from scratch (`ALTER TABLE large_email ADD COLUMN
# domain text`, then `UPDATE large_email SET domain = split_part(email, '@', 2)` as a
# migration), after VACUUM, a CHECKPOINT and the replica caught up (once, before the
# first mode, a full UPDATE and VACUUM leave room for one new version of each row, so
# no mode pays for growing the table). While it runs:
#   - a side connection samples the replica's replay lag every 100 ms (psql \watch 0.1 on
#     pg_stat_replication: 0 when everything is replayed, else replay_lag);
#   - `pgcalm probe` sends the app a read (GET /list_large/) and a write (POST
#     /add_large/) every $PROBE_INTERVAL; p99 of each from its samples.
# Wall time is the `pgcalm migrate` command's; rows/s is rows updated / wall time.
#
# Prints the table and writes it, with the machine and the date, to the "backfill.sh"
# section of bench/RESULTS.md. Logs: $WORK/logs. Needs cargo, curl, psql, python3.
# Environment: ROWS=10000000 MAX_LAG=1s DELAY=50ms FIXED_BATCH=1000 PROBE_INTERVAL=100ms
#              PORT=8094 WORK=/tmp/pgcalm-backfill-bench
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ROWS=${ROWS:-10000000}
MAX_LAG=${MAX_LAG:-1s}
DELAY=${DELAY:-50ms}
FIXED_BATCH=${FIXED_BATCH:-1000}
PROBE_INTERVAL=${PROBE_INTERVAL:-100ms}
PORT=${PORT:-8094}
WORK=${WORK:-/tmp/pgcalm-backfill-bench}
LOGS=$WORK/logs
RESULTS=$ROOT/bench/RESULTS.md
API="http://127.0.0.1:$PORT"
source "$ROOT/bench/common.sh"
require_tools cargo curl psql python3
build_pgcalm
fresh_workdir "$LOGS" "$WORK/modes"

SERVE_PID=""
SIDE_PIDS=()
cleanup() {
  for pid in "${SIDE_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  if [[ -n $SERVE_PID ]]; then kill -TERM "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; fi
  (cd "$WORK" && "$PGCALM" down --volumes >/dev/null 2>&1) || true
}
trap cleanup EXIT

step "pgcalm up --replica --pooler; the demo schema; seed $ROWS rows"
pgcalm up --replica --pooler >"$LOGS/up.log"
pgcalm migrate demoapp 0001 >"$LOGS/migrate_demo.log"
pgcalm seed --large-count "$ROWS" --batch-size 10000 >"$LOGS/seed.log"
embedded_cluster_env  # PG_PORT; psql finds the password through PGPASSFILE
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d risky_migrations)
sql() { "${PSQL[@]}" -Atc "$1"; }
LAG_SQL="SELECT extract(epoch FROM clock_timestamp())::float8,
       coalesce(max(CASE WHEN pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) <= 0 THEN 0
                 ELSE extract(epoch FROM replay_lag) END), 0)::float8,
       coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0)::int8
  FROM pg_stat_replication"
[[ $(sql "SELECT count(*) FROM pg_stat_replication") -ge 1 ]] || { echo "bench: no replica streams" >&2; exit 1; }
# Every mode then updates a table in the same state: one free version of each row after
# VACUUM (the first full update would otherwise also pay for growing the table).
step "warm-up: one full UPDATE of large_email, VACUUM"
sql "UPDATE large_email SET name = name" >/dev/null
sql "VACUUM large_email" >/dev/null

# The app, through the pooler when it can serve there.
start_serve() {
  if [[ $1 == pooler ]]; then
    DATABASE_URL=$("$PGCALM" url --pooler) "$PGCALM" serve --port "$PORT" >"$LOGS/serve.log" 2>&1 &
  else
    "$PGCALM" serve --port "$PORT" >"$LOGS/serve.log" 2>&1 &
  fi
  SERVE_PID=$!
  for _ in $(seq 100); do curl -fs "$API/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  # The probe the runs use, for 3 s at twice their rate: every request must succeed (a
  # pooler may fail only concurrent ones).
  "$PGCALM" probe "read=$API/list_large/" "write=POST $API/add_large/" --interval 50ms \
    --duration 3s --out "$LOGS/probe_check_$1.jsonl" >/dev/null 2>&1 || true
  ! grep -qv '"outcome":"ok"' "$LOGS/probe_check_$1.jsonl"
}
APP_PATH="through PgBouncer (transaction pooling, \`pgcalm up --pooler\`)"
if ! start_serve pooler; then
  kill -TERM "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true
  why=$(grep -o 'db error: [^(]*' "$LOGS/serve.log" | head -1 || true)
  mv "$LOGS/serve.log" "$LOGS/serve_pooler.log"
  APP_PATH="direct to the primary: through PgBouncer some of its requests failed (${why:-see serve_pooler.log}), so it could not be measured there"
  start_serve direct || { echo "bench: pgcalm serve does not answer" >&2; exit 1; }
fi
echo "app: $APP_PATH" >&2

wait_replica_caught_up() {
  for _ in $(seq 1200); do
    [[ $(sql "SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)), 0) <= 0 FROM pg_stat_replication") == t ]] && return
    sleep 0.1
  done
  echo "bench: the replica did not catch up in 120 s" >&2; exit 1
}

# run_mode NAME DIRECTIVE MAX_REPLICA_LAG
run_mode() {
  local name=$1 directive=$2 lag=$3 dir="$WORK/modes/$1"
  step "$name: -- pgcalm:backfill $directive, --max-replica-lag $lag"
  sql "ALTER TABLE large_email DROP COLUMN IF EXISTS domain" >/dev/null
  sql "ALTER TABLE large_email ADD COLUMN domain text" >/dev/null
  sql "VACUUM ANALYZE large_email" >/dev/null
  sql "CHECKPOINT" >/dev/null
  wait_replica_caught_up
  mkdir -p "$dir/bench"
  printf -- '-- migrate:up transaction:false\n-- pgcalm:backfill %s\nUPDATE large_email SET domain = split_part(email, %s, 2);\n' \
    "$directive" "'@'" >"$dir/bench/0001_domain_$name.sql"
  printf '%s\n\\watch 0.1\n' "$LAG_SQL" \
    | "${PSQL[@]}" -At -F ' ' >"$LOGS/lag_$name.txt" 2>/dev/null &
  local sampler=$!
  "$PGCALM" probe "read=$API/list_large/" "write=POST $API/add_large/" \
    --interval "$PROBE_INTERVAL" --out "$LOGS/probe_$name.jsonl" >"$LOGS/probe_$name.log" 2>&1 &
  local probe=$!
  SIDE_PIDS=("$sampler" "$probe")
  sleep 1
  local t0 t1
  t0=$(date +%s.%N)
  "$PGCALM" --migrations-dir "$dir" migrate --format json --max-replica-lag "$lag" >"$LOGS/migrate_$name.jsonl"
  t1=$(date +%s.%N)
  sleep 0.5
  kill -TERM "$probe"; wait "$probe" || true
  kill -TERM "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  SIDE_PIDS=()
  python3 - "$name" "$t0" "$t1" "$LOGS" >>"$LOGS/rows.txt" <<'PY'
import json, sys
name, t0, t1, logs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")
lags, lag_bytes = [], []
for line in open(f"{logs}/lag_{name}.txt"):
    parts = line.split()
    if len(parts) == 3 and t0 <= float(parts[0]) <= t1:
        lags.append(float(parts[1])); lag_bytes.append(int(parts[2]))
events = [json.loads(l) for l in open(f"{logs}/migrate_{name}.jsonl") if l.startswith("{")]
done = next(e for e in events if e["event"] == "backfill_finished")
waits = sum(1 for e in events if e["event"] == "replica_lag_wait")
lat = {"read": [], "write": []}
bad = {"read": 0, "write": 0}
for line in open(f"{logs}/probe_{name}.jsonl"):
    s = json.loads(line)
    if not (t0 * 1000 <= s["started_at_ms"] <= t1 * 1000):
        continue
    if s["outcome"] == "ok":
        lat[s["target"]].append(s["latency_ms"])
    else:
        bad[s["target"]] += 1
wall = t1 - t0
print("\t".join(str(x) for x in [
    name, f"{wall:.1f}", done["rows_updated"], f"{done['rows_updated'] / wall:.0f}", done["batches"],
    f"{max(lags, default=0):.2f}", f"{pct(lags, 0.99):.2f}", f"{max(lag_bytes, default=0) / 1048576:.1f}",
    waits, f"{done['waited_for_replica']:.1f}",
    f"{pct(lat['read'], 0.99):.1f}", f"{pct(lat['write'], 0.99):.1f}", bad["read"] + bad["write"], len(lags),
]))
PY
  tail -1 "$LOGS/rows.txt" >&2
}

: >"$LOGS/rows.txt"
run_mode unthrottled "batch_size=auto target=200ms" 0
run_mode fixed_delay "batch_size=$FIXED_BATCH delay=$DELAY" 0
run_mode lag_throttled "batch_size=auto target=200ms" "$MAX_LAG"

table() {
  echo "| mode (\`-- pgcalm:backfill ...\`, --max-replica-lag) | wall s | rows updated | rows/s | batches | replica lag max s | p99 s | max MB behind | waits (total s) | app read p99 ms | app write p99 ms | failed requests |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  while IFS=$'\t' read -r name wall rows rate batches lmax lp99 mb waits waited rp99 wp99 bad _n; do
    local how
    case $name in
      unthrottled) how="unthrottled (\`batch_size=auto target=200ms\`, 0)" ;;
      fixed_delay) how="fixed delay, pgroll's way (\`batch_size=$FIXED_BATCH delay=$DELAY\`, 0)" ;;
      lag_throttled) how="lag-throttled (\`batch_size=auto target=200ms\`, $MAX_LAG)" ;;
    esac
    echo "| $how | $wall | $(fmt_int "$rows") | $(fmt_int "$rate") | $batches | $lmax | $lp99 | $mb | $waits ($waited) | $rp99 | $wp99 | $bad |"
  done <"$LOGS/rows.txt"
}

MACHINE=$(machine_line)
PGVER=$(sql "SHOW server_version")
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
{
  echo "## Backfill with a replica: unthrottled, fixed delay, lag-throttled"
  echo
  echo "Measured by \`bench/backfill.sh\` (ROWS=$ROWS) on $(date -u '+%Y-%m-%d %H:%M UTC'), commit $REV."
  echo "Machine: $MACHINE, load average at the end $(cut -d' ' -f1-3 /proc/loadavg) (what else ran on it shows there). PostgreSQL $PGVER: pgcalm's embedded primary and its streaming replica (\`pgcalm up --replica --pooler\`), both on this machine."
  echo "Each mode: \`UPDATE large_email SET domain = split_part(email, '@', 2)\` over $(fmt_int "$ROWS") rows as a \`-- pgcalm:backfill\` migration (keyset batches by id, one transaction each). Replica lag sampled every 100 ms from a side connection (pg_stat_replication: 0 when all is replayed, else replay_lag). The app (\`pgcalm serve\`) $APP_PATH; \`pgcalm probe\` sent a read (GET /list_large/) and a write (POST /add_large/) every $PROBE_INTERVAL during each run."
  echo
  table
  echo
  echo "Logs of this run: \`$LOGS\` (migrate events as JSON lines, lag samples, probe samples). Rerun: \`bench/backfill.sh\` (ROWS, MAX_LAG, DELAY, FIXED_BATCH, PROBE_INTERVAL in the environment)."
} >"$LOGS/section.md"
python3 "$ROOT/bench/results_section.py" backfill.sh "$RESULTS" <"$LOGS/section.md"
echo >&2
cat "$LOGS/section.md"

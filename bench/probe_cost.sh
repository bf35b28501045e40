#!/usr/bin/env bash
# What watching costs: `pgcalm probe` beside the seed's curl loop, and `pgcalm monitor`'s
# queries beside the seed's `psql -c "SELECT ... FROM pg_stat_activity"`, in one run.
#
#  1. `pgcalm serve` (release build) on a scratch embedded cluster ($ROWS rows).
#  2. `pgcalm probe` with 5 targets every $INTERVAL (5 x 5 req/s at 200ms) for $DURATION
#     seconds, fresh connections (the default) and --keep-alive: CPU% of one core from
#     /proc/<pid>/stat utime+stime between second 2 and the end (steady state), and the
#     whole command's user+sys from /usr/bin/time.
#  3. The seed's Terminal 1 loop (date, curl --max-time 3, grep, sleep), one per target,
#     same 5 targets and interval, same duration: user+sys of the loops and every process
#     they started (/usr/bin/time over the script that waits for them).
#  4. Idle server: `pgcalm monitor --format json --count $SAMPLES --interval 20ms`, the
#     `query_ms` of each sample (the monitor's four queries, one pipelined round trip);
#     beside it the seed's `psql -c` on pg_stat_activity, wall time per sample.
#
# Prints a table and writes it, with the date and commit, to the "Watching cost" section
# of bench/RESULTS.md (replacing an older one). Needs cargo, curl, psql, python3,
# /usr/bin/time.
# Environment: DURATION=30 INTERVAL=0.2 ROWS=100000 SAMPLES=200 PORT=8093
#              WORK=/tmp/pgcalm-probe-cost
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DURATION=${DURATION:-30}
INTERVAL=${INTERVAL:-0.2}
ROWS=${ROWS:-100000}
SAMPLES=${SAMPLES:-200}
PORT=${PORT:-8093}
WORK=${WORK:-/tmp/pgcalm-probe-cost}
RESULTS=$ROOT/bench/RESULTS.md
API="http://127.0.0.1:$PORT"
TICK=$(getconf CLK_TCK)
source "$ROOT/bench/common.sh"
require_tools cargo curl psql python3 /usr/bin/time
build_pgcalm
fresh_workdir "$WORK/logs"
SERVE_PID=""
cleanup() {
  if [[ -n $SERVE_PID ]]; then kill -TERM "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; fi
  (cd "$WORK" && "$PGCALM" down --volumes >/dev/null 2>&1) || true
}
trap cleanup EXIT

step "pgcalm up; seed $ROWS rows; serve on :$PORT"
pgcalm up >"$WORK/logs/up.log"
pgcalm migrate demoapp 0001 >"$WORK/logs/migrate.log"
pgcalm seed --large-count "$ROWS" >"$WORK/logs/seed.log"
# The binary itself, not the pgcalm() function: a backgrounded function is a subshell,
# and killing its pid at cleanup would leave the server running.
"$PGCALM" --migrations-dir "$ROOT/migrations" serve --port "$PORT" >"$WORK/logs/serve.log" 2>&1 & SERVE_PID=$!
for _ in $(seq 100); do curl -fs "$API/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
embedded_cluster_env  # PG_PORT; psql finds the password through PGPASSFILE
TARGETS=(
  "list=$API/list_large/"
  "small=$API/list_small/"
  "lookup=$API/lookup/?email=user5@example.com"
  "health=$API/healthz"
  "list2=$API/list_large/?n=2"
)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# probe_cpu LABEL FLAGS...: steady-state CPU% (from /proc) and whole-run CPU% (time).
probe_cpu() {
  local label=$1; shift
  /usr/bin/time -f '%U %S %e' -o "$WORK/logs/probe_$label.time" \
    "$PGCALM" probe "${TARGETS[@]}" --interval "${INTERVAL}s" --duration "${DURATION}s" "$@" \
    >"$WORK/logs/probe_$label.log" &
  local tpid=$! pid=""
  for _ in $(seq 50); do pid=$(pgrep -P "$tpid" -x pgcalm || true); [[ -n $pid ]] && break; sleep 0.05; done
  sleep 2
  local t0 c0 t1 c1
  t0=$(date +%s.%N); c0=$(cpu_ticks "$pid")
  sleep $((DURATION - 3))
  t1=$(date +%s.%N); c1=$(cpu_ticks "$pid")
  wait "$tpid"
  local steady whole requests
  steady=$(python3 -c "print(f'{100 * ($c1 - $c0) / $TICK / ($t1 - $t0):.2f}')")
  whole=$(awk '{printf "%.2f", 100 * ($1 + $2) / $3}' "$WORK/logs/probe_$label.time")
  requests=$(grep -c ' - [✓✗] ' "$WORK/logs/probe_$label.log" || true)
  echo "$steady $whole $requests"
}

step "pgcalm probe: 5 targets every ${INTERVAL}s for ${DURATION}s, fresh connections"
read -r FRESH_STEADY FRESH_WHOLE FRESH_REQ < <(probe_cpu fresh)
step "pgcalm probe --keep-alive"
read -r KA_STEADY KA_WHOLE KA_REQ < <(probe_cpu keepalive --keep-alive)

step "the seed's curl loop, one per target, every ${INTERVAL}s for ${DURATION}s"
cat >"$WORK/curl_loops.sh" <<LOOPS
#!/usr/bin/env bash
end=\$((SECONDS + $DURATION))
for url in $(printf '%q ' "${TARGETS[@]#*=}"); do
  ( while (( SECONDS < end )); do
      echo -n "\$(date +%H:%M:%S) - "
      curl --max-time 3 "\$url" 2>&1 | grep -q "emails\|ok\|email" && echo "✓ API responded" || echo "✗ API blocked/timeout"
      sleep $INTERVAL
    done ) &
done
wait
LOOPS
chmod +x "$WORK/curl_loops.sh"
/usr/bin/time -f '%U %S %e' -o "$WORK/logs/curl.time" "$WORK/curl_loops.sh" >"$WORK/logs/curl.log"
CURL_WHOLE=$(awk '{printf "%.2f", 100 * ($1 + $2) / $3}' "$WORK/logs/curl.time")
CURL_REQ=$(grep -c ' - [✓✗] ' "$WORK/logs/curl.log" || true)

step "pgcalm monitor on the idle server: $SAMPLES samples"
pgcalm monitor --format json --count "$SAMPLES" --interval 20ms >"$WORK/logs/monitor.jsonl"
read -r MON_P50 MON_P90 MON_MAX < <(python3 - "$WORK/logs/monitor.jsonl" <<'PY'
import json, statistics, sys
ms = sorted(json.loads(l)["query_ms"] for l in open(sys.argv[1]))
q = lambda p: ms[min(len(ms) - 1, int(p * len(ms)))]
print(f"{q(0.5):.2f} {q(0.9):.2f} {ms[-1]:.2f}")
PY
)
step "the seed's psql -c on pg_stat_activity: 50 samples"
PSQL_SQL="SELECT pid, usename, state, query, wait_event_type FROM pg_stat_activity WHERE datname = 'risky_migrations' AND query NOT LIKE '%pg_stat_activity%';"
t0=$(date +%s.%N)
for _ in $(seq 50); do psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d risky_migrations -c "$PSQL_SQL" >/dev/null; done
t1=$(date +%s.%N)
PSQL_MS=$(python3 -c "print(f'{1000 * ($t1 - $t0) / 50:.2f}')")

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD)
TABLE=$(cat <<MD
## Watching cost: pgcalm probe and pgcalm monitor

Measured by \`bench/probe_cost.sh\` on $(date -u '+%Y-%m-%d %H:%M') UTC, commit $COMMIT, $(nproc) cores (load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)); \`pgcalm serve\` on $ROWS rows, same machine.

| 5 targets every ${INTERVAL}s, ${DURATION} s | requests | CPU % of one core (steady, /proc utime+stime) | CPU % (whole command, /usr/bin/time) | goal |
|---|---:|---:|---:|---|
| \`pgcalm probe\` (fresh connection per request, default) | $FRESH_REQ | $FRESH_STEADY | $FRESH_WHOLE | < 2% |
| \`pgcalm probe --keep-alive\` | $KA_REQ | $KA_STEADY | $KA_WHOLE | < 2% |
| the seed's curl loop, one per target (bash, date, curl, grep) | $CURL_REQ | - | $CURL_WHOLE | |

| Sampling the idle database | p50 ms | p90 ms | max ms | goal |
|---|---:|---:|---:|---|
| \`pgcalm monitor\`: its own queries per sample (sessions, lock waits, index builds, maintenance; $SAMPLES samples) | $MON_P50 | $MON_P90 | $MON_MAX | < 5 ms |
| the seed's \`psql -c "SELECT ... FROM pg_stat_activity"\`, wall per sample (new process and connection; 50 samples) | $PSQL_MS (mean) | | | |

Rerun: \`bench/probe_cost.sh\` (DURATION, INTERVAL, ROWS, SAMPLES, PORT in the environment). Logs: \`$WORK/logs\`.
MD
)
echo "$TABLE"
echo "$TABLE" | python3 "$ROOT/bench/results_section.py" probe_cost.sh "$RESULTS"

#!/usr/bin/env bash
# The seed's scenario (index on large_email.email) measured twice on the same server and
# row count: by `pgcalm lab` (the real release binary) and by the Django peer's own
# experiment (../shared/peers/django_seed/scripts/migration_experiment.sh, run from its
# directory, never copied). Shows whether pgcalm's verdicts (who is blocked, for how
# long) agree with the peer's measurement, and writes the table into bench/RESULTS.md
# (between the lab_vs_django.sh markers).
#
#  1. `pgcalm up` in a scratch directory (the embedded PostgreSQL both sides use).
#  2. `pgcalm lab --rows $ROWS`: seeds, then risky (plain CREATE INDEX in a transaction)
#     on separate read/write pools and on one shared pool, then safe (CONCURRENTLY).
#  3. The peer, database peer_lab on the same server: `migration_experiment.sh
#     $TOPOLOGIES` (loads $ROWS rows with generate_series, gunicorn with 2 sync workers,
#     its probe at the same cadence and timeout: 200 ms, 3 s; per topology a baseline,
#     safe, rollback, risky (RISKY=1: Django's db_index on the CharField, two indexes
#     in one transaction), rollback).
#  4. The peer's raw probe samples are judged by pgcalm's rules as well (the same
#     stalled-request stretch and the same "blocked" test as crates/pgcalm-lab/src/
#     verdict.rs), so the two columns compare like with like; the peer's own summary
#     figure (its longest run of non-ok requests) is shown beside them.
#
# The two sides run one after the other, never together. About 8 minutes at 1M rows on
# 2 cores, plus the release build when it is not up to date.
#
# COMPARE_ONLY=1 only redoes the table from an earlier run's $WORK (its ROWS, TOPOLOGIES).
#
# Environment: ROWS=1000000 TOPOLOGIES="iso shared3" WORK=/tmp/pgcalm-lab-vs-django
#              PEER_DIR=<repo>/../shared/peers/django_seed
#              PEER_TMP=/tmp/django_peer (the peer's venv, created if missing)
#              PGCALM_BIN (a pgcalm binary to use instead of building one)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
ROWS=${ROWS:-1000000}
TOPOLOGIES=${TOPOLOGIES:-iso shared3}
WORK=${WORK:-/tmp/pgcalm-lab-vs-django}
PEER_DIR=${PEER_DIR:-$ROOT/../shared/peers/django_seed}
export PEER_TMP=${PEER_TMP:-/tmp/django_peer}
PEER_DB=peer_lab
LOGS=$WORK/logs
RESULTS=$ROOT/bench/RESULTS.md

PEER_DIR="$(cd "$PEER_DIR" && pwd)"
source "$ROOT/bench/common.sh"
require_tools cargo psql python3 curl

if [[ ${COMPARE_ONLY:-0} != 1 ]]; then
  build_pgcalm
  fresh_workdir "$LOGS"
  cleanup() { (cd "$WORK" && "$PGCALM" down >/dev/null 2>&1) || true; }
  trap cleanup EXIT

  step "starting the embedded PostgreSQL: pgcalm up"
  pgcalm up >"$LOGS/up.log"
  embedded_cluster_env

  # ---------------------------------------------------------------- pgcalm lab
  step "pgcalm lab --rows $ROWS --out $WORK/lab-report"
  LAB_LOAD=$(cut -d' ' -f1 /proc/loadavg)
  t0=$(date +%s.%N)
  pgcalm lab --rows "$ROWS" --out "$WORK/lab-report" >"$LOGS/lab.log" 2>"$LOGS/lab.err"
  t1=$(date +%s.%N)
  LAB_SECS=$(python3 -c "print(f'{$t1 - $t0:.0f}')")
  cat "$LOGS/lab.log" >&2

  # ---------------------------------------------------------------- the peer
  if [[ ! -x $PEER_TMP/venv/bin/gunicorn ]]; then
    step "creating the peer's venv in $PEER_TMP/venv"
    python3 -m venv "$PEER_TMP/venv"
    "$PEER_TMP/venv/bin/pip" install -q -r "$PEER_DIR/requirements.txt"
  fi
  step "the peer: migration_experiment.sh $TOPOLOGIES ($ROWS rows, database $PEER_DB)"
  PEER_LOAD=$(cut -d' ' -f1 /proc/loadavg)
  t0=$(date +%s.%N)
  # The embedded server's password, in the peer's environment.
  # shellcheck disable=SC2086
  DB_HOST=127.0.0.1 DB_PORT="$PG_PORT" DB_USER=postgres DB_PASSWORD="$PG_PASSWORD" DB_NAME="$PEER_DB" \
    RESULTS="$WORK/peer" ROWS="$ROWS" \
    "$PEER_DIR/scripts/migration_experiment.sh" $TOPOLOGIES >"$LOGS/peer.log" 2>&1
  t1=$(date +%s.%N)
  PEER_SECS=$(python3 -c "print(f'{$t1 - $t0:.0f}')")
  printf 'LAB_SECS=%q PEER_SECS=%q ROWS=%q TOPOLOGIES=%q LAB_LOAD=%q PEER_LOAD=%q\n' \
    "$LAB_SECS" "$PEER_SECS" "$ROWS" "$TOPOLOGIES" "$LAB_LOAD" "$PEER_LOAD" >"$WORK/run.env"
fi
# shellcheck source=/dev/null
source "$WORK/run.env"

# ---------------------------------------------------------------- the table
step "comparing"
TABLE=$(python3 - "$WORK/lab-report/results.json" "$WORK/peer/migration" "$ROWS" "$TOPOLOGIES" \
  "$LAB_SECS" "$PEER_SECS" "$(nproc)" "$(git -C "$ROOT" rev-parse --short HEAD)" \
  "${LAB_LOAD:-?}" "${PEER_LOAD:-?}" <<'PY'
import csv, json, os, sys, datetime

results_path, peer_dir, rows, topologies, lab_secs, peer_secs, cores, commit, lab_load, peer_load = sys.argv[1:]
res = json.load(open(results_path))
scenario = next(s for s in res["scenarios"] if s["name"] == "add_index")
limit_ms = scenario["forms"][0]["verdict"]["safe_criteria"]["limit_ms"]   # lock timeout + 1 s
HUNG_MS = 500.0      # crates/pgcalm-lab/src/verdict.rs HUNG_MS
TAIL_S = 3.5         # the lab's judged window: migration start to the end of its tail

def stretches(samples):
    """pgcalm's rule: runs of stalled requests (failed, timed out or >= HUNG_MS) by send
    time, from the first one's send to the last one's end (seconds)."""
    out, cur = [], None
    for at, lat, ok in sorted(samples):
        if not ok or lat >= HUNG_MS:
            end = at + lat / 1000.0
            cur = (at, end) if cur is None else (cur[0], max(cur[1], end))
        elif cur is not None:
            out.append(cur); cur = None
    if cur is not None:
        out.append(cur)
    return out

def judge(samples, window, waited):
    """(blocked, longest stretch s, failed, requests, p99 ms) of samples sent in window."""
    inside = [s for s in samples if window[0] <= s[0] <= window[1]]
    failed = sum(1 for s in inside if not s[2])
    slowest = max((s[1] for s in inside), default=0.0)
    longest = max((b - a for a, b in stretches(samples) if b >= window[0] and a <= window[1]), default=0.0)
    lats = sorted(s[1] for s in inside)
    p99 = lats[min(len(lats) - 1, max(0, -(-99 * len(lats) // 100) - 1))] if lats else float("nan")
    return failed > 0 or slowest > limit_ms or waited, longest, failed, len(inside), p99

def cell(blocked, longest, level=None, held=None):
    if level == "queued":      # pgcalm's middle level: held by the lock, answered in time
        return f"⚠️ Queued ({held:.1f} s)"
    return f"✅ Yes ({longest:.1f} s)" if blocked else "❌ No"

def pgcalm_row(form):
    v = form["verdict"]
    ep = {e["role"]: e for e in form["endpoints"]}
    def counts(role):
        m = ep[role]["migration"]
        return m["requests"] - m["ok"], m["requests"], m["p99_ms"]
    r, w = counts("read"), counts("write")
    base = lambda role: ep[role]["baseline"]["requests"] - ep[role]["baseline"]["ok"]
    return {
        "baseline": f"{base('read')} / {base('write')}",
        "reads": cell(v["reads"]["blocked"], v["reads"]["longest_stretch_s"], v["reads"].get("level"), v["reads"].get("held_s")),
        "writes": cell(v["writes"]["blocked"], v["writes"]["longest_stretch_s"], v["writes"].get("level"), v["writes"].get("held_s")),
        "wall": form["migration"]["wall_ms"] / 1000.0,
        "failed": f"{r[0]} of {r[1]} / {w[0]} of {w[1]}",
        "p99": f"{r[2]:.0f} / {w[2]:.0f}",
        "own": "",
        "rb": v["reads"]["blocked"], "wb": v["writes"]["blocked"],
    }

def peer_row(case):
    d = os.path.join(peer_dir, case)
    win = json.load(open(os.path.join(d, "window.json")))
    by = {}
    for r in csv.DictReader(open(os.path.join(d, "probe.csv"))):
        by.setdefault(r["target"], []).append((float(r["ts_start"]), float(r["latency_ms"]), r["outcome"] == "ok"))
    # pgcalm counts a wait of 0.2 s or more on the migration's lock; the peer's monitor
    # samples every 0.25 s, so: the same kind of query seen waiting in two samples in a row.
    waits = {"read": False, "write": False}
    runs = {"read": 0, "write": 0}
    lp = os.path.join(d, "locks.csv")
    if os.path.exists(lp):
        for r in csv.DictReader(open(lp)):
            if not win["mig_start"] <= float(r["ts"]) <= win["mig_end"]:
                continue
            q = r["waiting_queries"].upper() if int(r["lock_waiters"]) > 0 else ""
            for role, seen in (("write", "INSERT" in q), ("read", "SELECT" in q)):
                runs[role] = runs[role] + 1 if seen else 0
                waits[role] |= runs[role] >= 2
    window = (win["mig_start"], win["mig_end"] + TAIL_S)
    rb, rl, rf, rn, rp = judge(by.get("list_large", []), window, waits["read"])
    wb, wl, wf, wn, wp = judge(by.get("add_large", []), window, waits["write"])
    summary = json.load(open(os.path.join(d, "summary.json")))["targets"]
    own = "; ".join(f"{t} {summary[t]['during_migration']['longest_non_ok_span_s']} s"
                    for t in ("list_large", "add_large") if t in summary)
    # migrate.log ends with the table's indexes after the migration (the peer's script).
    last = (open(os.path.join(d, "migrate.log")).read().strip().splitlines() or [""])[-1]
    indexes = [", ".join(i for i in last.split(", ") if not i.endswith("_pkey"))]
    # The same topology's baseline case: failures with no migration running.
    base_dir = os.path.join(peer_dir, case.split("_")[0] + "_0_baseline")
    base = {"list_large": 0, "add_large": 0}
    for r in csv.DictReader(open(os.path.join(base_dir, "probe.csv"))):
        if r["target"] in base and r["outcome"] != "ok":
            base[r["target"]] += 1
    return {
        "baseline": f"{base['list_large']} / {base['add_large']}",
        "reads": cell(rb, rl), "writes": cell(wb, wl),
        "wall": win["mig_end"] - win["mig_start"],
        "failed": f"{rf} of {rn} / {wf} of {wn}", "p99": f"{rp:.0f} / {wp:.0f}",
        "own": own, "rb": rb, "wb": wb, "indexes": indexes[0],
    }

forms = {(f["form"], f["topology"]): f for f in scenario["forms"]}
topos = topologies.split()
peer_topo = {"separate": next((t for t in topos if t.startswith("iso")), None),
             "shared": next((t for t in topos if t.startswith("shared")), None)}
lines = [
    "| case | who | reads blocked? | writes blocked? | migration | failed reads / writes | p99 ms reads / writes | failed reads / writes in the baseline (no migration) | the peer's own summary: longest non-ok run |",
    "|---|---|---|---|---:|---|---|---|---|",
]
agree = []
peer_indexes = ""
# pgcalm's seed-like shared pool (a request whose client gave up keeps its connection,
# like a gunicorn sync worker) is the closest to the peer's shared server.
runs = [("risky", "separate", "separate", "risky, separate pools"),
        ("risky", "shared_seed_like", "shared", "risky, seed-like shared pool"),
        ("risky", "shared", "shared", "risky, shared pool"),
        ("safe", "shared", "shared", "safe, shared pool")]
for form, pg_topo, topo, label in runs:
    if (form, pg_topo) not in forms or peer_topo[topo] is None:
        continue
    pg = pgcalm_row(forms[(form, pg_topo)])
    case = f"{peer_topo[topo]}_{3 if form == 'risky' else 1}_{form}"
    peer = peer_row(case)
    peer_indexes = peer_indexes or (peer["indexes"] if form == "risky" else "")
    who_pg = "pgcalm lab" + {"separate": " (reads and writes on separate pools of 4)",
                             "shared": " (one pool of 4)",
                             "shared_seed_like": " (one pool of 4, abandoned queries keep their connection)"}[pg_topo]
    who_peer = f"Django peer `{case}` (gunicorn, 2 sync workers" + (", one server per endpoint)" if topo == "separate" else ", one server)")
    for who, r in [(who_pg, pg), (who_peer, peer)]:
        lines.append(f"| {label} | {who} | {r['reads']} | {r['writes']} | {r['wall']:.1f} s | {r['failed']} | {r['p99']} | {r['baseline']} | {r['own']} |")
    same = pg["rb"] == peer["rb"] and pg["wb"] == peer["wb"]
    yn = lambda b: "blocked" if b else "not blocked"
    verdict = f"{label}: {'agree' if same else 'differ'} (reads {yn(pg['rb'])} / {yn(peer['rb'])}, writes {yn(pg['wb'])} / {yn(peer['wb'])})"
    if peer["baseline"] != "0 / 0":
        verdict += (f"; the peer's `{case.split('_')[0]}` server already failed {peer['baseline']} reads / writes"
                    " with no migration running (unindexed lookups every 200 ms hold its 2 sync workers),"
                    " so its numbers here measure the lookups, not the migration")
    agree.append(verdict)

now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
print(f"""## `pgcalm lab` vs the Django peer's migration experiment (the seed's index; peer topologies {topologies})

{now}, commit {commit}, {cores} cores, {int(rows):,} rows in large_email on both sides, one
embedded PostgreSQL {res['run']['postgres_version'].split()[0]}; `pgcalm lab` {lab_secs} s in all (seed included), the peer's
experiment ({topologies}) {peer_secs} s; 1-minute load average when each started (other
builds share this machine): {lab_load} and {peer_load}. Both probe every 200 ms with a 3 s timeout.
"Blocked" and the longest stretch use pgcalm's rules for both columns (a request failed,
timed out or took over {limit_ms / 1000:.0f} s, or a monitor saw one wait on a lock; stretch = run of requests
failed, timed out or slower than 0.5 s, first send to last end), over the migration and
3.5 s after it. The peer's risky migration built: {peer_indexes or 'see its migrate.log'}.

""" + "\n".join(lines) + "\n\nVerdicts (pgcalm / peer):\n" + "".join(f"- {a}.\n" for a in agree) + """

What differs between the two set-ups, and how it shows in the numbers:
- The peer's risky migration (Django's `db_index=True` on a CharField) builds two indexes in
  one transaction, the btree and a `varchar_pattern_ops` one (`..._like`), so its SHARE lock
  is held for both builds: writes wait about twice as long as behind pgcalm's one index.
- The peer's migration time is the whole `manage.py migrate` command, Django's start-up
  (about 1 s here) included; pgcalm's is the runner's, from its first statement to its last.
- gunicorn sync workers (2 per server) versus pgcalm's pools (4 connections): a worker stuck
  on a blocked write stays stuck after the client gives up, so two hung writes stop every
  endpoint of a shared server; pgcalm cancels the query of a timed-out request and frees its
  connection, so on its shared pool reads queue for a connection (see their p99) but get one
  within the probe's 3 s timeout: slow, not failed, hence "not blocked" by the rule above.
- The peer probes `/lookup/` every 200 ms (a parallel scan of the table each, until the index
  is valid), pgcalm every 2 s: the peer's builds share the CPU with more scans.""")
PY
)
echo "$TABLE"
# One section per set of peer topologies, so a run with and one without lookups coexist.
printf '%s\n' "$TABLE" | python3 "$ROOT/bench/results_section.py" "lab_vs_django.sh $TOPOLOGIES" "$RESULTS"
echo "(written to bench/RESULTS.md; pgcalm's report in $WORK/lab-report, the peer's in $WORK/peer/migration)" >&2

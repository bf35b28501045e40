#!/usr/bin/env bash
# Peak memory (RSS, from /usr/bin/time) and time of `pgcalm lint` (release build) on
# generated files:
#   - $STATEMENTS (default 100,000) and 10,000 statements of plain SQL: the lint corpus's
#     plain-SQL files (tests/fixtures/lint) repeated, as bench/lint_vs_squawk.sh times it;
#   - a $MIGRATION_MB (default 50) MB migration file: a data migration (CREATE TABLE, then
#     INSERTs of 100 rows each, and a down section).
# Each file in text (the default) and JSON output, to /dev/null; $RUNS runs each, the
# median time and peak (and the highest peak). With BEFORE_BIN set, that binary (e.g. a release
# build of an older commit) is measured too, in the same run, alternating with this one.
# Prints the table and writes it, with the date and commit, to the "pgcalm lint: memory"
# section of bench/RESULTS.md.
#
#   bench/lint_memory.sh
#   BEFORE_BIN=/tmp/old/pgcalm BEFORE_LABEL="main at abc1234" RUNS=5 bench/lint_memory.sh
#
# Environment: WORK (scratch dir, default /tmp/pgcalm-lint-memory), RUNS (default 3),
# STATEMENTS, MIGRATION_MB, PGCALM_BIN (a binary instead of the release build),
# BEFORE_BIN (a binary to compare with), BEFORE_LABEL (what it is, for the text). Needs
# cargo, python3, /usr/bin/time.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK=${WORK:-/tmp/pgcalm-lint-memory}
RUNS=${RUNS:-3}
STATEMENTS=${STATEMENTS:-100000}
MIGRATION_MB=${MIGRATION_MB:-50}
BEFORE_BIN=${BEFORE_BIN:-}
BEFORE_LABEL=${BEFORE_LABEL:-$BEFORE_BIN}
RESULTS=$ROOT/bench/RESULTS.md
source "$ROOT/bench/common.sh"
require_tools cargo python3 /usr/bin/time
build_pgcalm
# fresh_workdir moves to WORK: binaries given by a relative path are resolved first.
PGCALM=$(realpath "$PGCALM")
[[ -z $BEFORE_BIN ]] || BEFORE_BIN=$(realpath "$BEFORE_BIN")
fresh_workdir

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- crates Cargo.lock || echo " + uncommitted changes")
step "generating the files and measuring (RUNS=$RUNS)"
export ROOT WORK RUNS STATEMENTS MIGRATION_MB PGCALM BEFORE_BIN BEFORE_LABEL COMMIT
TABLE=$(python3 - <<'PY'
import json, os, re, statistics, subprocess, sys, time
from datetime import datetime, timezone

ROOT, WORK = os.environ["ROOT"], os.environ["WORK"]
RUNS, STATEMENTS = int(os.environ["RUNS"]), int(os.environ["STATEMENTS"])
MIGRATION_MB = int(os.environ["MIGRATION_MB"])
BINARIES = [("this commit", os.environ["PGCALM"])]
if os.environ["BEFORE_BIN"]:
    BINARIES.insert(0, ("before", os.environ["BEFORE_BIN"]))
CORPUS = os.path.join(ROOT, "tests/fixtures/lint")


def statements_of(path):
    """Statements in a file, as pgcalm lint counts them."""
    out = subprocess.run([os.environ["PGCALM"], "lint", "--format", "json", path],
                         capture_output=True, text=True).stdout
    return json.loads(out)["summary"]["statements"]


def plain_sql(count):
    """The plain-SQL corpus files repeated until they hold `count` statements."""
    plain = []
    for d in ("risky", "safe"):
        for name in sorted(os.listdir(os.path.join(CORPUS, d))):
            path = os.path.join(CORPUS, d, name)
            text = open(path).read()
            if name.endswith(".sql") and not re.search(r"^--\s*migrate:up", text, re.M):
                plain.append((text, statements_of(path)))
    parts, n = [], 0
    while n < count:
        for text, k in plain:
            parts.append(text)
            n += k
            if n >= count:
                break
    path = os.path.join(WORK, f"plain_{count}.sql")
    open(path, "w").write("\n".join(parts))
    return path


def migration(mb):
    """A data migration of `mb` megabytes."""
    path = os.path.join(WORK, f"0001_seed_{mb}mb.sql")
    with open(path, "w") as out:
        out.write("-- migrate:up\nCREATE TABLE seeded_users (id bigint PRIMARY KEY, "
                  "name text NOT NULL, email text NOT NULL);\n\n")
        i = size = 0
        while size < mb * 1024 * 1024:
            rows = ",\n  ".join(f"({i + k}, 'User {i + k}', 'user{i + k}@example.com')"
                                for k in range(100))
            stmt = f"INSERT INTO seeded_users (id, name, email) VALUES\n  {rows};\n"
            out.write(stmt)
            size += len(stmt)
            i += 100
        out.write("\n-- migrate:down\nDROP TABLE seeded_users;\n")
    return path


def measure(binary, args):
    """(peak RSS in MB, wall s, user+sys s) of one run. The peak comes from /usr/bin/time
    (%M): a process this script forks directly starts with this script's RSS as its
    maxrss. The times come from wait4 (microseconds; /usr/bin/time's are 10 ms), with
    /usr/bin/time's own share, about a millisecond."""
    start = time.perf_counter()
    p = subprocess.Popen(["/usr/bin/time", "-f", "%M", binary, "lint", *args],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode not in (0, 1):
        sys.exit(f"{binary} lint {' '.join(args)} exited {p.returncode}:\n{err[-2000:]}")
    return int(err.split()[-1]) / 1024, wall, usage.ru_utime + usage.ru_stime


files = [
    ("plain SQL (the corpus repeated)", plain_sql(STATEMENTS)),
    ("plain SQL (the corpus repeated)", plain_sql(10000)),
    ("migration file (INSERTs of 100 rows)", migration(MIGRATION_MB)),
]
rows = []
for label, path in files:
    count = statements_of(path)
    size = os.path.getsize(path) / 1024 / 1024
    for fmt in ("text", "json"):
        args = ["--format", fmt, path]
        samples = {name: [] for name, _ in BINARIES}
        for _ in range(RUNS):  # alternate, so both see the same background load
            for name, binary in BINARIES:
                samples[name].append(measure(binary, args))
        for name, _ in BINARIES:
            s = samples[name]
            peak = statistics.median(x[0] for x in s)
            highest = max(x[0] for x in s)
            wall = statistics.median(x[1] for x in s)
            cpu = statistics.median(x[2] for x in s)
            rows.append(f"| {label} | {count:,} | {size:.1f} MB | {fmt} | {name} "
                        f"| {peak:,.0f} MB ({highest:,.0f}) | {wall:.3f} s | {cpu:.3f} s | {count / max(cpu, 1e-3):,.0f} |")

version = subprocess.run([os.environ["PGCALM"], "--version"], capture_output=True,
                         text=True).stdout.strip()
now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
load = os.getloadavg()[0]
before = (f" \"before\" is {os.environ['BEFORE_LABEL']} (release build), measured in the same run, "
          "alternating with this commit's binary." if os.environ["BEFORE_BIN"] else "")
print("\n".join([
    "## pgcalm lint: memory and time",
    "",
    f"Measured by `bench/lint_memory.sh` on {now}, commit {os.environ['COMMIT']}, `{version}` "
    f"(release build), {os.cpu_count()} cores, load average {load:.1f}: peak RSS (`/usr/bin/time`; the "
    f"median of {RUNS} runs, the highest in brackets) and time (median) of "
    f"`pgcalm lint --format FORMAT FILE > /dev/null`. "
    f"CPU time (user + sys) is the steadier figure on a shared machine.{before}",
    "",
    "| file | statements | size | output | binary | peak RSS (highest) | wall time | CPU time | statements/s (CPU) |",
    "|---|---:|---:|---|---|---:|---:|---:|---:|",
    *rows,
    "",
]))
PY
)
printf '%s\n' "$TABLE"
printf '%s\n' "$TABLE" | python3 "$ROOT/bench/results_section.py" lint_memory.sh "$RESULTS"
echo "(written to bench/RESULTS.md)" >&2

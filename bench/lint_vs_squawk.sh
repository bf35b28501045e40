#!/usr/bin/env bash
# pgcalm lint beside squawk (PyPI squawk-cli) on the lint corpus (tests/fixtures/lint):
# per tool, risky statements caught and missed, safe statements falsely flagged, the
# cases where the two differ, and both timed on one generated 10,000-statement file.
# Prints the tables and writes them, with the date and commit, into bench/RESULTS.md
# (section "pgcalm lint vs squawk").
#
#   bench/lint_vs_squawk.sh                 # release build + squawk install if missing
#   SQUAWK_VERSION=2.70.0 RUNS=5 bench/lint_vs_squawk.sh
#
# Environment: WORK (scratch dir, default /tmp/pgcalm-lint-bench: the squawk venv, the
# generated file, raw JSON of both tools), SQUAWK_VERSION (default 2.70.0, the version
# issue 8 measured), RUNS (timed runs per tool, default 5; the median is reported),
# STATEMENTS (size of the generated file, default 10000), PGCALM (a pgcalm binary to use
# instead of building target/release/pgcalm), BEFORE_BIN and BEFORE_LABEL (an older pgcalm
# release binary, e.g. main before a change, timed in the same rounds: one more row).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${WORK:-/tmp/pgcalm-lint-bench}
SQUAWK_VERSION=${SQUAWK_VERSION:-2.70.0}
RUNS=${RUNS:-5}
STATEMENTS=${STATEMENTS:-10000}
mkdir -p "$WORK"

SQUAWK=$WORK/venv/bin/squawk
if ! "$SQUAWK" --version 2>/dev/null | grep -qx "squawk $SQUAWK_VERSION"; then
  echo "==> installing squawk-cli $SQUAWK_VERSION into $WORK/venv"
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install --quiet --disable-pip-version-check "squawk-cli==$SQUAWK_VERSION"
fi

if [[ -z ${PGCALM:-} ]]; then
  echo "==> cargo build --release -p pgcalm-cli"
  cargo build --release --locked --quiet -p pgcalm-cli
  PGCALM=$ROOT/target/release/pgcalm
fi

COMMIT=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates Cargo.lock || echo " + uncommitted changes")
BEFORE_BIN=${BEFORE_BIN:-}
BEFORE_LABEL=${BEFORE_LABEL:-$BEFORE_BIN}
export ROOT WORK SQUAWK PGCALM RUNS STATEMENTS COMMIT BEFORE_BIN BEFORE_LABEL
exec python3 - <<'PY'
"""Runs both linters, maps each finding to the corpus statement on its line, scores."""
import json, os, re, resource, statistics, subprocess, sys, time, tomllib
from collections import defaultdict
from datetime import datetime, timezone

ROOT, WORK = os.environ["ROOT"], os.environ["WORK"]
SQUAWK, PGCALM = os.environ["SQUAWK"], os.environ["PGCALM"]
RUNS, STATEMENTS = int(os.environ["RUNS"]), int(os.environ["STATEMENTS"])
CORPUS = os.path.join(ROOT, "tests/fixtures/lint")
SCHEMA = os.path.join(CORPUS, "schema.sql")

# squawk rules about style or robustness, not about blocking the application or breaking
# it: not counted as findings (pgcalm has no such rules). require-statement-timeout is
# here because pgcalm has no statement_timeout rule; the statement counts it would add
# are printed separately.
SQUAWK_STYLE = {
    "prefer-robust-stmts", "require-statement-timeout", "prefer-bigint-over-int",
    "prefer-bigint-over-smallint", "prefer-identity", "prefer-text-field",
    "prefer-timestamptz", "ban-char-field", "identifier-too-long",
    "require-table-schema",
}


def split_statements(text):
    """(first line, last line, text) of each statement, 1-based lines; comments skipped."""
    out, i, n, start = [], 0, len(text), None
    def line(pos):
        return text.count("\n", 0, pos) + 1
    while i < n:
        c = text[i]
        if text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        if c.isspace():
            i += 1
            continue
        if start is None:
            start = i
        if c in "'\"":
            j = i + 1
            while j < n:
                if text[j] == c and text[j + 1:j + 2] == c:
                    j += 2
                elif text[j] == c:
                    break
                else:
                    j += 1
            i = j + 1
            continue
        m = re.match(r"\$[A-Za-z_]*\$", text[i:])
        if m:
            j = text.find(m.group(0), i + len(m.group(0)))
            i = n if j < 0 else j + len(m.group(0))
            continue
        if c == ";":
            out.append((line(start), line(i), text[start:i + 1]))
            start = None
        i += 1
    if start is not None:
        out.append((line(start), line(n), text[start:]))
    return out


def load_cases():
    manifest = tomllib.load(open(os.path.join(CORPUS, "expected.toml"), "rb"))
    cases = []
    for case in manifest["case"]:
        text = open(os.path.join(CORPUS, case["file"])).read()
        stmts = split_statements(text)
        for exp in case["statement"]:
            hits = [s for s in stmts if exp["sql"] in s[2]]
            if len(hits) != 1:
                sys.exit(f"expected.toml: {case['file']}: snippet {exp['sql']!r} "
                         f"matches {len(hits)} statements (needs exactly one)")
            exp["lines"] = (hits[0][0], hits[0][1])
        case["statements"] = stmts
        cases.append(case)
    return cases


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode not in (0, 1):
        sys.exit(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stderr}")
    return p.stdout


def squawk_findings(files, pg):
    """{path: [(line 1-based, rule)]}"""
    out = run([SQUAWK, "--reporter", "json", f"--pg-version={pg}", *files])
    found = defaultdict(list)
    for f in json.loads(out or "[]"):
        found[os.path.realpath(f["file"])].append((f["line"] + 1, f["rule_name"]))
    return found


def pgcalm_findings(files, pg):
    # One run per file: the cases are independent, and files given in one run are one
    # project's migrations in order (an index an earlier case drops is gone for the later
    # ones). squawk reads each file alone anyway.
    found = defaultdict(list)
    for path in files:
        out = run([PGCALM, "lint", "--format", "json", "--pg-version", str(pg),
                   "--schema", SCHEMA, path])
        for file in json.loads(out)["files"]:
            for f in file["findings"]:
                found[os.path.realpath(file["path"])].append((f["span"]["line"], f["rule"]))
    return found


def by_statement(case, findings):
    """Rules found on each statement of the file, keyed by the statement's first line."""
    rules = defaultdict(set)
    for line, rule in findings:
        for first, last, _ in case["statements"]:
            if first <= line <= last:
                rules[first].add(rule)
                break
        else:
            rules[None].add(rule)
    return rules


cases = load_cases()
by_pg = defaultdict(list)
for case in cases:
    by_pg[case.get("pg_version", 15)].append(case)

tools = {"pgcalm": pgcalm_findings, "squawk": squawk_findings}
results = {t: {} for t in tools}  # tool -> (file, first line) -> set of rules
unplaced = {t: 0 for t in tools}
for tool, fn in tools.items():
    for pg, group in by_pg.items():
        found = fn([os.path.join(CORPUS, c["file"]) for c in group], pg)
        for case in group:
            per = by_statement(case, found.get(os.path.realpath(os.path.join(CORPUS, case["file"])), []))
            unplaced[tool] += len(per.pop(None, ()))
            for first, rules in per.items():
                results[tool][(case["file"], first)] = rules


def counted(tool, rules):
    return {r for r in rules if tool != "squawk" or r not in SQUAWK_STYLE}


score = {t: dict(caught=0, with_rule=0, missed=[], false=[], other=0, style_only=0) for t in tools}
rows = []
n_risky = n_safe = 0
listed = set()
for case in cases:
    for exp in case["statement"]:
        key = (case["file"], exp["lines"][0])
        listed.add(key)
        risky = exp["verdict"] == "risky"
        n_risky += risky
        n_safe += not risky
        expected = {"pgcalm": set(exp.get("rules", [])), "squawk": set(exp.get("squawk", []))}
        verdicts = {}
        for t in tools:
            all_rules = results[t].get(key, set())
            got = counted(t, all_rules)
            s = score[t]
            if risky:
                if got:
                    s["caught"] += 1
                    s["with_rule"] += bool(got & expected[t])
                    verdicts[t] = "caught: " + ", ".join(sorted(got))
                else:
                    s["missed"].append(key)
                    verdicts[t] = "**missed**"
            else:
                if got:
                    s["false"].append(key)
                    verdicts[t] = "**flagged**: " + ", ".join(sorted(got))
                else:
                    verdicts[t] = "ok"
                    s["style_only"] += bool(all_rules)
        if bool(results["pgcalm"].get(key)) != bool(counted("squawk", results["squawk"].get(key, set()))) or \
                verdicts["pgcalm"].startswith("**") or verdicts["squawk"].startswith("**"):
            snippet = exp["sql"].replace("|", "\\|")
            rows.append(f"| {case['file']}:{exp['lines'][0]} | `{snippet}` | {exp['verdict']} "
                        f"| {verdicts['pgcalm']} | {verdicts['squawk']} |")
# findings on statements that are not under test (SET, BEGIN, COMMIT)
for t in tools:
    score[t]["other"] = sum(1 for k, r in results[t].items() if k not in listed and counted(t, r))


def timed(cmd):
    """Median wall time and median CPU time (user + sys of the child) over RUNS runs. On a
    shared machine the CPU time is the steadier of the two."""
    walls, cpus = [], []
    for _ in range(RUNS):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


# The timing file: the plain-SQL corpus files (not the pgcalm migrations), repeated whole
# until it holds STATEMENTS statements.
def is_migration(case):
    text = open(os.path.join(CORPUS, case["file"])).read()
    return re.search(r"^--\s*migrate:up", text, re.M) is not None


plain = [c for c in cases if not is_migration(c)]
big, count = [], 0
while count < STATEMENTS:
    for c in plain:
        big.append(open(os.path.join(CORPUS, c["file"])).read())
        count += len(c["statements"])
        if count >= STATEMENTS:
            break
big_path = os.path.join(WORK, f"corpus_x{count}.sql")
open(big_path, "w").write("\n".join(big))
# Alternate the tools so both see the same background load.
BEFORE = os.environ.get("BEFORE_BIN") or None
t_pgcalm, t_squawk, t_before = [], [], []
for _ in range(2):
    t_pgcalm.append(timed([PGCALM, "lint", "--format", "json", big_path]))
    t_squawk.append(timed([SQUAWK, "--reporter", "json", big_path]))
    if BEFORE:
        t_before.append(timed([BEFORE, "lint", "--format", "json", big_path]))
w_pgcalm, c_pgcalm = min(t[0] for t in t_pgcalm), min(t[1] for t in t_pgcalm)
w_squawk, c_squawk = min(t[0] for t in t_squawk), min(t[1] for t in t_squawk)
before_rows = []
if BEFORE:
    w_before, c_before = min(t[0] for t in t_before), min(t[1] for t in t_before)
    before_rows = [
        f"| `pgcalm lint --format json`, before ({os.environ['BEFORE_LABEL']}) | {w_before * 1000:.0f} ms "
        f"| {count / w_before:,.0f} | {c_before * 1000:.0f} ms | {count / max(c_before, 1e-3):,.0f} |"
    ]
load = os.getloadavg()[0]

version = lambda cmd: subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
lines = [
    "## pgcalm lint vs squawk",
    "",
    f"Measured by `bench/lint_vs_squawk.sh` on {now}, commit {os.environ['COMMIT']}: "
    f"`{version([PGCALM, '--version'])}` (release build) and `{version([SQUAWK, '--version'])}` "
    f"(PyPI squawk-cli) on the same corpus, `tests/fixtures/lint` ({len(cases)} migrations, "
    f"{n_risky} risky and {n_safe} safe statements under test; `expected.toml` has the verdicts). "
    "pgcalm gets `--schema tests/fixtures/lint/schema.sql`; both get `--pg-version` where a case sets one.",
    "",
    "| tool | risky caught | ... with the equivalent rule | risky missed | safe falsely flagged | findings on SET/BEGIN/COMMIT |",
    "|---|---:|---:|---:|---:|---:|",
]
for t in tools:
    s = score[t]
    lines.append(f"| {t} | {s['caught']}/{n_risky} | {s['with_rule']}/{n_risky} | {len(s['missed'])} "
                 f"| {len(s['false'])}/{n_safe} | {s['other']} |")
lines += [
    "",
    f"squawk rules not counted (style or robustness, no pgcalm counterpart): {', '.join(sorted(SQUAWK_STYLE))}. "
    f"They flag {score['squawk']['style_only']} of the safe statements squawk otherwise passes. "
    f"Findings that fell on no statement: pgcalm {unplaced['pgcalm']}, squawk {unplaced['squawk']}.",
    "",
    f"Speed, one file of {count:,} statements (the plain-SQL corpus repeated), JSON output to /dev/null; "
    f"median of {RUNS} runs, the better of two rounds (the tools alternate); load average {load:.1f} on "
    f"{os.cpu_count()} cores during the run, so CPU time (user + sys) is the steadier figure:",
    "",
    "| tool | wall time | statements/s (wall) | CPU time | statements/s (CPU) |",
    "|---|---:|---:|---:|---:|",
    f"| `pgcalm lint --format json` | {w_pgcalm * 1000:.0f} ms | {count / w_pgcalm:,.0f} | {c_pgcalm * 1000:.0f} ms | {count / max(c_pgcalm, 1e-3):,.0f} |",
    *before_rows,
    f"| `squawk --reporter json` | {w_squawk * 1000:.0f} ms | {count / w_squawk:,.0f} | {c_squawk * 1000:.0f} ms | {count / max(c_squawk, 1e-3):,.0f} |",
    "",
    f"squawk's CPU time is {c_squawk / max(c_pgcalm, 1e-6):.2f}x pgcalm's.",
    "",
    "Every statement where the tools differ or either is wrong:",
    "",
    "| statement | under test | expected | pgcalm | squawk |",
    "|---|---|---|---|---|",
    *rows,
    "",
]
section = "\n".join(lines)
print(section)

results_md = os.path.join(ROOT, "bench/RESULTS.md")
old = open(results_md).read() if os.path.exists(results_md) else ""
begin, end = "<!-- lint_vs_squawk.sh: start -->", "<!-- lint_vs_squawk.sh: end -->"
block = f"{begin}\n{section}{end}\n"
if begin in old and end in old:
    new = old[:old.index(begin)] + block + old[old.index(end) + len(end) + 1:]
else:
    new = old.rstrip("\n") + "\n\n" + block
open(results_md, "w").write(new)
json.dump({"score": {t: {k: (v if not isinstance(v, list) else [list(x) for x in v]) for k, v in s.items()} for t, s in score.items()},
           "n_risky": n_risky, "n_safe": n_safe, "statements": count,
           "wall_seconds": {"pgcalm": w_pgcalm, "squawk": w_squawk},
           "cpu_seconds": {"pgcalm": c_pgcalm, "squawk": c_squawk}, "load": load},
          open(os.path.join(WORK, "summary.json"), "w"), indent=1)
print(f"(written to bench/RESULTS.md; raw numbers in {WORK}/summary.json)", file=sys.stderr)
sys.exit(0 if not score["pgcalm"]["missed"] and not score["pgcalm"]["false"] else 1)
PY

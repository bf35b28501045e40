#!/usr/bin/env python3
"""Figures of bench/corpus/lint_corpus.sh, and the hand-judging sample.

    summarise.py prepare                 # (lint_corpus.sh) OUT/jobs.tsv, goose up-views
    summarise.py summary                 # the tables, from OUT's raw JSON
    summarise.py sample [--linter pgcalm|squawk] [-n 50] [--seed 15]
                                         # a uniform random sample of findings, each with
                                         # its statement and file context
    summarise.py classes                 # corpus-wide census of the known false-positive
                                         # and bad-fix classes (heuristic)
    summarise.py precision FILE.tsv      # precision and false-positive classes of a
                                         # judged sample (columns verdict, class)
    summarise.py relint [--pgcalm BIN]   # every fix re-linted in place, in its file's mode

Environment: CORPUS (default /work/corpus), OUT (default /tmp/pgcalm-corpus-lint),
DIRECTION (up | down | all, default up).
"""
import argparse
import collections
import csv
import json
import os
import random
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.environ.get("CORPUS", "/work/corpus")
OUT = os.environ.get("OUT", "/tmp/pgcalm-corpus-lint")
DIRECTION = os.environ.get("DIRECTION", "up")

# squawk rules about style or robustness, not about blocking or breaking the running
# application (pgcalm has no such rules); counted apart. The same list as
# bench/lint_vs_squawk.sh, with the names squawk 2.70 reports.
SQUAWK_STYLE = {
    "prefer-robust-stmts", "require-statement-timeout", "prefer-bigint-over-int",
    "prefer-bigint-over-smallint", "prefer-identity", "prefer-text-field",
    "prefer-timestamptz", "prefer-timestamp-tz", "ban-char-field", "identifier-too-long",
    "require-table-schema",
}


def manifest():
    with open(os.path.join(HERE, "manifest.tsv")) as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r for r in rows if DIRECTION == "all" or r["direction"] == DIRECTION]


def corpus_path(row):
    return os.path.join(CORPUS, row["repo"].replace("/", "+"), row["path"])


def goose_up_view(text):
    """The file with every line outside the `-- +goose Up` section blanked."""
    out, section = [], None
    for line in text.split("\n"):
        m = re.match(r"^\s*--\s*\+goose\s+(Up|Down)\b", line, re.I)
        if m:
            section = m.group(1).lower()
            out.append(line)
            continue
        out.append(line if section == "up" else "")
    return "\n".join(out)


def is_empty(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"--[^\n]*", "", text)
    return not text.strip()


def prepare():
    rows = manifest()
    with open(os.path.join(OUT, "jobs.tsv"), "w") as f:
        f.write("id\tfile\tmode\trepo\tpath\ttool\tempty\n")
        for i, r in enumerate(rows):
            src = corpus_path(r)
            text = open(src, encoding="utf-8", errors="replace").read()
            # FLAGS=tool: pgcalm's --tool goose reads the Up section (and NO TRANSACTION) itself
            if r["tool"] == "goose" and os.environ.get("FLAGS", "mode") != "tool":
                text = goose_up_view(text)
                src = os.path.join(OUT, "view", f"{i:05d}.sql")
                with open(src, "w") as v:
                    v.write(text)
            empty = "1" if is_empty(text) else "0"
            f.write(f"{i:05d}\t{src}\t{r['mode']}\t{r['repo']}\t{r['path']}\t{r['tool']}\t{empty}\n")


def jobs():
    with open(os.path.join(OUT, "jobs.tsv")) as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def read_run(linter, job):
    """(status, flags, statements, findings) of one file; status ok | parse | crash."""
    base = os.path.join(OUT, linter, job["id"])
    if not os.path.exists(base + ".rc"):
        return None
    rc, _, flags = open(base + ".rc").read().strip().partition(" ")
    rc = int(rc)
    out = open(base + ".json", errors="replace").read()
    if linter == "pgcalm":
        if rc > 2:
            return ("crash", flags, None, [])
        doc = json.loads(out) if out.strip() else {"files": []}
        if rc == 2 or not doc["files"]:
            return ("parse", flags, None, [])
        f = doc["files"][0]
        return ("ok", flags, f["statements"], f["findings"])
    # squawk: exit 1 with findings; a syntax error is a finding of rule syntax-error
    try:
        found = json.loads(out) if out.strip() else []
    except json.JSONDecodeError:
        return ("crash", flags, None, [])
    if rc not in (0, 1):
        return ("crash", flags, None, [])
    if any(x.get("rule_name") == "syntax-error" for x in found):
        return ("parse", flags, None, found)
    return ("ok", flags, None, found)


def pct(a, b):
    return f"{100 * a / b:.0f}%" if b else "-"


def summary():
    js = jobs()
    lines = [f"Corpus: {len(js)} files ({DIRECTION} migrations) of "
             f"{len({j['repo'] for j in js})} projects, {len({j['tool'] for j in js})} tools; "
             f"{sum(j['empty'] == '1' for j in js)} hold no statement (comments or nothing).", ""]
    for linter in ("pgcalm", "squawk"):
        runs = {j["id"]: read_run(linter, j) for j in js}
        if not any(runs.values()):
            continue
        lines.append(f"## {linter}")
        lines.append("")
        per_tool = collections.OrderedDict()
        rules = collections.Counter()
        rule_files = collections.Counter()
        for j in js:
            r = runs[j["id"]]
            if r is None:
                continue
            status, _, stmts, findings = r
            for key in ("all", j["tool"]):
                t = per_tool.setdefault(key, collections.Counter())
                t["files"] += 1
                t["nonempty"] += j["empty"] == "0"
                t[status] += 1
                t["ok_nonempty"] += status == "ok" and j["empty"] == "0"
                if status == "ok":
                    t["statements"] += stmts or 0
                    kept = [x for x in findings if linter == "pgcalm"
                            or x["rule_name"] not in SQUAWK_STYLE]
                    t["findings"] += len(findings)
                    t["with"] += bool(findings)
                    t["with_hazard"] += bool(kept)
                    if linter == "pgcalm":
                        t["with_error"] += any(x["severity"] == "error" for x in findings)
                        t["with_not_mlt"] += any(x["rule"] != "missing-lock-timeout"
                                                 for x in findings)
            if status == "ok":
                names = [x["rule"] if linter == "pgcalm" else x["rule_name"] for x in findings]
                rules.update(names)
                rule_files.update(set(names))
        if linter == "pgcalm":
            lines.append("| tool | files | non-empty | statements | parse failures | crashes "
                         "| files with findings | % of non-empty files linted | with an error "
                         "| findings |")
            lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        else:
            lines.append("| tool | files | non-empty | syntax errors | crashes "
                         "| files with findings | % of non-empty files linted "
                         "| without style rules | % | findings |")
            lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for key, t in per_tool.items():
            linted = t["ok_nonempty"]
            if linter == "pgcalm":
                lines.append(f"| {key} | {t['files']} | {t['nonempty']} | {t['statements']} "
                             f"| {t['parse']} | {t['crash']} | {t['with']} "
                             f"| {pct(t['with'], linted)} | {t['with_error']} | {t['findings']} |")
            else:
                lines.append(f"| {key} | {t['files']} | {t['nonempty']} | {t['parse']} "
                             f"| {t['crash']} | {t['with']} | {pct(t['with'], linted)} "
                             f"| {t['with_hazard']} | {pct(t['with_hazard'], linted)} "
                             f"| {t['findings']} |")
        if linter == "pgcalm":
            t = per_tool["all"]
            lines.append("")
            lines.append(f"Files with a finding of a rule other than missing-lock-timeout: "
                         f"{t['with_not_mlt']} ({pct(t['with_not_mlt'], t['ok_nonempty'])} of "
                         f"the non-empty files linted). Crashes: the linter aborted (a file "
                         f"or a section with no statement).")
        lines.append("")
        lines.append("| rule | findings | files |")
        lines.append("|---|---:|---:|")
        for rule, n in rules.most_common():
            mark = " (style)" if linter == "squawk" and rule in SQUAWK_STYLE else ""
            lines.append(f"| {rule}{mark} | {n} | {rule_files[rule]} |")
        lines.append("")
    print("\n".join(lines))


def all_findings(linter):
    out = []
    for j in jobs():
        r = read_run(linter, j)
        if r is None or r[0] != "ok":
            continue
        for k, x in enumerate(r[3]):
            out.append((j, r[1], k, x))
    return out


def context(path, first, last, around=25):
    lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
    lo = 1 if len(lines) <= 80 else max(1, first - around)
    hi = len(lines) if len(lines) <= 80 else min(len(lines), last + 5)
    out = []
    for n in range(lo, hi + 1):
        text = lines[n - 1]
        if not text.strip():
            continue
        mark = ">>" if first <= n <= last else "  "
        out.append(f"{mark}{n:5} {text[:160]}")
    return "\n".join(out)


def sample(linter, n, seed):
    found = all_findings(linter)
    picked = random.Random(seed).sample(range(len(found)), min(n, len(found)))
    print(f"# {len(picked)} of {len(found)} {linter} findings, seed {seed}\n")
    for no, i in enumerate(picked, 1):
        j, flags, k, x = found[i]
        if linter == "pgcalm":
            src = open(j["file"], "rb").read()
            stmt = src[x["span"]["start"]:x["span"]["end"]].decode(errors="replace")
            first = x["span"]["line"]
            last = first + stmt.count("\n")
            rule, msg = x["rule"], x["message"]
            extra = f"fix_sql: {x.get('fix_sql')!r}" if x.get("fix_sql") else ""
        else:
            first, last = x["line"] + 1, x.get("line_end", x["line"]) + 1
            rule, msg, extra = x["rule_name"], x["message"], x.get("help") or ""
        print(f"=== #{no} finding {i} | {rule} | {j['repo']} {j['path']}:{first} "
              f"| tool {j['tool']} mode {j['mode']} flags [{flags}] | job {j['id']}")
        print(f"message: {msg}")
        if extra:
            print(extra[:600])
        print(context(j["file"], first, last))
        print()


def precision(path):
    with open(path) as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    tp, n = sum(r["verdict"] == "TP" for r in rows), len(rows)
    # Wilson score interval, 95%
    z, p = 1.96, tp / n
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    print(f"{path}: {tp}/{n} true positives, precision {100 * p:.0f}% "
          f"(95% interval {100 * (mid - half):.0f}-{100 * (mid + half):.0f}%)")
    classes = collections.Counter(r["class"] for r in rows if r["verdict"] == "FP")
    for c, k in classes.most_common():
        print(f"  {k:3} {c}")
    by_rule = collections.defaultdict(lambda: [0, 0])
    for r in rows:
        by_rule[r["rule"]][r["verdict"] == "TP"] += 1
    for rule, (fp, tp) in sorted(by_rule.items(), key=lambda x: -sum(x[1])):
        print(f"  rule {rule}: {tp} TP, {fp} FP")


# PostgreSQL's table-lock conflict matrix: a statement that needs mode R cannot wait when
# its transaction already holds M with conflicts(R) <= conflicts(M) (whoever blocks R
# would have blocked M, which the transaction already has).
CONFLICTS = {
    "ACCESS SHARE": {"ACCESS EXCLUSIVE"},
    "ROW SHARE": {"EXCLUSIVE", "ACCESS EXCLUSIVE"},
    "ROW EXCLUSIVE": {"SHARE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"},
    "SHARE UPDATE EXCLUSIVE": {"SHARE UPDATE EXCLUSIVE", "SHARE", "SHARE ROW EXCLUSIVE",
                               "EXCLUSIVE", "ACCESS EXCLUSIVE"},
    "SHARE": {"ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE ROW EXCLUSIVE", "EXCLUSIVE",
              "ACCESS EXCLUSIVE"},
    "SHARE ROW EXCLUSIVE": {"ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE",
                            "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"},
    "EXCLUSIVE": {"ROW SHARE", "ROW EXCLUSIVE", "SHARE UPDATE EXCLUSIVE", "SHARE",
                  "SHARE ROW EXCLUSIVE", "EXCLUSIVE", "ACCESS EXCLUSIVE"},
}
CONFLICTS["ACCESS EXCLUSIVE"] = set(CONFLICTS) | {"ACCESS EXCLUSIVE"}


def bare(name):
    """Table name without schema and quotes, as compared across statements."""
    return (name or "").split(".")[-1].strip('"')


def ident_re(name):
    return r'(?:"?\w+"?\.)?"?' + re.escape(name) + r'"?'


def classes():
    """Corpus-wide counts of the false-positive and bad-fix classes of issue 15, found by
    simple rules over the JSON (and the --locks report) of every file; each with an
    example. A heuristic census beside the hand-judged sample, not a replacement."""
    found = collections.defaultdict(list)  # class -> [(job, finding or None)]
    for j in jobs():
        r = read_run("pgcalm", j)
        if r is None or r[0] != "ok":
            continue
        status, flags, _, findings = r
        in_tx = "--assume-in-transaction" in flags
        doc = json.loads(open(os.path.join(OUT, "pgcalm", j["id"] + ".json")).read())
        locks = (doc["files"][0].get("locks") if doc.get("files") else None) or []
        src = open(j["file"], "rb").read()
        text = src.decode(errors="replace")
        utc = re.search(r"\bset\s+(?:local\s+|session\s+)?(?:timezone|time\s+zone)\s*(?:=|to)?\s*"
                        r"'(?:utc|etc/utc|gmt)'", text, re.I)
        seen = collections.Counter()
        for x in findings:
            rule, sp = x["rule"], x["span"]
            stmt = src[sp["start"]:sp["end"]].decode(errors="replace")
            # what the fix runs: its comment lines (later steps) are not executed
            fix = "\n".join(line for line in (x.get("fix_sql") or "").split("\n")
                             if not line.lstrip().startswith("--"))
            key = (rule, sp["start"])
            seen[key] += 1
            if seen[key] > 1:
                found[f"duplicate: {rule} again on the same statement"].append((j, x))
            if rule == "missing-lock-timeout":
                t, want = bare(x.get("table")), x.get("lock")
                if in_tx and want in CONFLICTS:
                    for st in locks:
                        if st["span"]["start"] >= sp["start"]:
                            break
                        if any(l["target"].get("kind") == "table"
                               and bare(l["target"]["name"]["name"]) == t
                               and CONFLICTS[want] <= CONFLICTS.get(l["mode"], set())
                               for l in st["locks"]):
                            found["missing-lock-timeout: the transaction already holds "
                                  "that lock (or a stronger one)"].append((j, x))
                            break
                m = re.match(r"\s*create\s+(?:unlogged\s+)?table\s+(?:if\s+not\s+exists\s+)?"
                             r"((?:\"?\w+\"?\.)?\"?[\w]+\"?)", stmt, re.I)
                if m and bare(m.group(1)) == t:
                    found["missing-lock-timeout: self-referencing FK in CREATE TABLE"].append((j, x))
            if rule == "changing-column-type" and re.search(
                    r"\btype\s+(timestamptz|timestamp(\s*\(\d\))?\s+with\s+time\s+zone)", stmt, re.I):
                found["changing-column-type: timestamp -> timestamptz" +
                      (" under SET timezone 'UTC'" if utc else " (no SET timezone in the file)")
                      ].append((j, x))
            if rule == "dropping-column":
                m = re.match(r"DROP COLUMN (\S+) on (\S+):", x["message"])
                # the same column added back later in the statement or the file
                if m and re.search(r"\badd\s+(?:column\s+)?(?:if\s+not\s+exists\s+)?"
                                   + ident_re(bare(m.group(1))) + r"\s",
                                   text[sp["start"]:], re.I):
                    found["dropping-column: dropped and re-added in the same file"].append((j, x))
            if rule == "dropping-table":
                t = bare(x.get("table"))
                later = text[sp["end"]:]
                if re.search(r"create\s+(?:unlogged\s+)?table\s+(?:if\s+not\s+exists\s+)?"
                             + ident_re(t) + r"[\s(]", later, re.I):
                    found["dropping-table: dropped and re-created in the same file"].append((j, x))
                if re.search(r"alter\s+table\s+(?:if\s+exists\s+)?\S+\s+rename\s+to\s+"
                             + ident_re(t) + r"\s*;", later, re.I):
                    found["dropping-table: replaced by a table renamed to its name"].append((j, x))
            # safe-SQL rewrites (fix_sql) that cannot run where the file runs, or change it
            if fix and in_tx and re.search(r"\bconcurrently\b", fix, re.I):
                found["fix: CONCURRENTLY offered for a file that runs in one transaction"].append((j, x))
            if fix and in_tx and re.search(r"\bvalidate\s+constraint\b", fix, re.I):
                found["fix: NOT VALID + VALIDATE in the same transaction (no gain)"].append((j, x))
            quoted = {q for q in re.findall(r'"([^"]+)"', stmt) if q != q.lower()}
            if fix and any(re.search(r'(?<!["\w])' + re.escape(q) + r'(?![\w"])', fix, re.I)
                           for q in quoted):
                found["fix: a quoted mixed-case identifier loses its quotes"].append((j, x))
            if fix and re.search(r"\bdrop\b[^,;]*\bcascade\b", stmt, re.I) and \
                    not re.search(r"\bcascade\b", fix, re.I):
                found["fix: DROP ... CASCADE loses its CASCADE"].append((j, x))
            if fix and re.search(r"\breferences\b", stmt, re.I) and \
                    not re.search(r"\breferences\b", fix, re.I):
                found["fix: the statement's REFERENCES (foreign key) dropped"].append((j, x))
            if fix and rule != "missing-lock-timeout" and re.match(r"\s*alter\s+table", stmt, re.I):
                body = re.sub(r"'[^']*'|\([^()]*(?:\([^()]*\)[^()]*)*\)", "", stmt)
                if body.count(",") >= 1:
                    acts = [a.strip().split()[:2] for a in body.split(",")[1:]]
                    norm = re.sub(r"\s+", " ", fix.lower())
                    if any(a and " ".join(a).lower() not in norm for a in acts):
                        found["fix: other clauses of a multi-clause ALTER TABLE dropped"].append((j, x))
    total = sum(1 for _ in all_findings("pgcalm"))
    print(f"Heuristic census over all {total} pgcalm findings ({DIRECTION} migrations)\n")
    print("| class | findings | example |")
    print("|---|---:|---|")
    for c in sorted(found, key=lambda c: -len(found[c])):
        j, x = found[c][0]
        print(f"| {c} | {len(found[c])} | {j['repo']} `{j['path']}`:{x['span']['line']} |")
    return found


def relint(pgcalm, limit=None):
    """Every fix (fix_sql) of a rule other than missing-lock-timeout, put in place of its
    statement and linted again with PGCALM in the file's own mode (the same flags): the
    fixes that raise their own rule again, `concurrently-in-transaction` (CONCURRENTLY
    where the file runs in a transaction), or a rule the statement did not have. The
    corpus-wide version of crates/pgcalm-lint's fix check."""
    import shutil
    import subprocess
    import tempfile
    counts, examples = collections.Counter(), collections.defaultdict(list)
    tmp = tempfile.mkdtemp(prefix="pgcalm-relint-")
    n = 0
    for j in jobs():
        r = read_run("pgcalm", j)
        if r is None or r[0] != "ok":
            continue
        flags = r[1].split()
        src = open(j["file"], "rb").read()
        for x in r[3]:
            fix = x.get("fix_sql")
            if not fix or x["rule"] == "missing-lock-timeout":
                continue
            if limit is not None and n >= limit:
                break
            n += 1
            sp = x["span"]
            start, end = sp["start"], sp["end"]
            if src[end:end + 1] == b";":
                end += 1
            fb = fix.encode()
            sep = b"\n" if fix.split("\n")[-1].lstrip().startswith("--") else b""
            # the file's directory name and the tool's side files (Diesel's metadata.toml,
            # Flyway's V1__x.sql.conf) kept: `--tool` reads the mode from them
            d = os.path.join(tmp, j["id"], os.path.basename(os.path.dirname(j["file"])))
            os.makedirs(d, exist_ok=True)
            path = os.path.join(d, os.path.basename(j["file"]))
            for side in (os.path.join(os.path.dirname(j["file"]), "metadata.toml"), j["file"] + ".conf"):
                if os.path.exists(side):
                    shutil.copy(side, os.path.join(d, os.path.basename(side)))
            with open(path, "wb") as f:
                f.write(src[:start] + fb + sep + src[end:])
            out = subprocess.run([pgcalm, "lint", "--format", "json",
                                  "--pg-version", os.environ.get("PG_VERSION", "15"),
                                  *flags, path], capture_output=True, text=True)
            counts["fixes"] += 1
            try:
                doc = json.loads(out.stdout)
            except json.JSONDecodeError:
                counts["does not lint"] += 1
                examples["does not lint"].append((j, x))
                continue
            if not doc.get("files"):
                counts["does not parse"] += 1
                examples["does not parse"].append((j, x))
                continue
            original = {y["rule"] for y in r[3] if y["span"]["start"] == sp["start"]}
            found = {y["rule"] for y in doc["files"][0]["findings"]
                     if start <= y["span"]["start"] < start + len(fb)}
            problems = set()
            if x["rule"] in found:
                problems.add(f"raises {x['rule']} again")
            if "concurrently-in-transaction" in found:
                problems.add("cannot run in the file's transaction")
            if found - original - {"concurrently-in-transaction"}:
                problems.add("adds " + ", ".join(sorted(found - original - {"concurrently-in-transaction"})))
            for p in problems:
                counts[p] += 1
                examples[p].append((j, x))
            counts["wrong"] += bool(problems)
    with open(os.path.join(OUT, "relint.tsv"), "w") as f:  # every wrong fix, for a look
        for k, v in examples.items():
            for j, x in v:
                f.write(f"{k}\t{x['rule']}\t{j['repo']}\t{j['path']}\t{x['span']['line']}\n")
    print(f"Re-linted {counts['fixes']} fixes (rules other than missing-lock-timeout) with {pgcalm}: "
          f"{counts['wrong']} wrong where their file runs\n")
    print("| problem | fixes | example |")
    print("|---|---:|---|")
    for k, v in sorted(counts.items(), key=lambda kv: -kv[1]):
        if k in ("fixes", "wrong"):
            continue
        j, x = examples[k][0]
        print(f"| {k} | {v} | {x['rule']}: {j['repo']} `{j['path']}`:{x['span']['line']} |")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("prepare")
    sub.add_parser("summary")
    s = sub.add_parser("sample")
    s.add_argument("--linter", default="pgcalm", choices=["pgcalm", "squawk"])
    s.add_argument("-n", type=int, default=50)
    s.add_argument("--seed", type=int, default=15)
    sub.add_parser("classes")
    r = sub.add_parser("relint")
    r.add_argument("--pgcalm", default=os.environ.get("PGCALM", "/work/main/target/debug/pgcalm"))
    r.add_argument("--limit", type=int)
    p = sub.add_parser("precision")
    p.add_argument("file")
    a = ap.parse_args()
    if a.cmd == "prepare":
        prepare()
    elif a.cmd == "summary":
        summary()
    elif a.cmd == "classes":
        classes()
    elif a.cmd == "relint":
        relint(a.pgcalm, a.limit)
    elif a.cmd == "sample":
        sample(a.linter, a.n, a.seed)
    else:
        precision(a.file)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Lints the corpus a project at a time, as `pgcalm lint DIR` would: each project's files
in one run, in path order (the order `pgcalm lint DIR` walks them), so indexes created by
earlier files are known to later ones. Each file keeps the flags of a per-file run of
lint_corpus.sh (PRIOR: its OUT; `--tool X`, or the manifest mode's flags), so files of
one project with different flags are separate runs. Writes OUT/pgcalm/ID.json and .rc
like lint_corpus.sh (one file's report each), for summarise.py.

    PRIOR=/tmp/eval-corpus-final OUT=/tmp/eval-corpus-history PGCALM=target/debug/pgcalm \\
      python3 bench/corpus/lint_history.py && OUT=/tmp/eval-corpus-history \\
      CORPUS=/tmp/eval-corpus-files python3 bench/corpus/summarise.py summary
"""
import csv
import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict

PRIOR = os.environ["PRIOR"]
OUT = os.environ["OUT"]
PGCALM = os.path.abspath(os.environ["PGCALM"])
PG_VERSION = os.environ.get("PG_VERSION", "15")


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    for d in ("pgcalm", "cwd"):
        os.makedirs(os.path.join(OUT, d))
    shutil.copy(os.path.join(PRIOR, "jobs.tsv"), OUT)
    with open(os.path.join(OUT, "jobs.tsv")) as f:
        jobs = list(csv.DictReader(f, delimiter="\t"))
    groups = defaultdict(list)
    for j in jobs:
        rc = open(os.path.join(PRIOR, "pgcalm", j["id"] + ".rc")).read().strip()
        flags = rc.partition(" ")[2].split()
        groups[(j["repo"], tuple(flags))].append(j)
    for (repo, flags), group in groups.items():
        group.sort(key=lambda j: j["file"])
        run = subprocess.run(
            [PGCALM, "lint", "--format", "json", "--locks", "--pg-version", PG_VERSION,
             *flags, *[j["file"] for j in group]],
            cwd=os.path.join(OUT, "cwd"), capture_output=True, text=True)
        if run.returncode > 2:
            sys.exit(f"{repo} {flags}: pgcalm exit {run.returncode}: {run.stderr[-2000:]}")
        doc = json.loads(run.stdout) if run.stdout.strip() else {"files": []}
        by_path = defaultdict(list)
        for f in doc["files"]:
            by_path[f["path"]].append(f)
        for j in group:
            files = by_path.get(j["file"], [])
            failed = any(j["file"] in line for line in run.stderr.splitlines()
                         if line.startswith("error"))
            rc = 2 if failed else (1 if any(f["findings"] for f in files) else 0)
            base = os.path.join(OUT, "pgcalm", j["id"])
            with open(base + ".json", "w") as out:
                json.dump({"files": files}, out)
            with open(base + ".rc", "w") as out:
                out.write(f"{rc} {' '.join(flags)}\n")
        print(f"{repo} {' '.join(flags) or '(no flags)'}: {len(group)} files", file=sys.stderr)


main()

#!/usr/bin/env python3
"""Writes bench/corpus/manifest.tsv from the repository snapshots in /work/.mirror.

One row per migration file: repo, commit, path, tool, direction, mode, license.
The selection (which paths of which repo, at which commit, and how the tool runs each
file) is the table PROJECTS below; re-run after changing it:

    python3 bench/corpus/build_manifest.py            # MIRROR=/work/.mirror by default

mode is how the migration tool sends the file to PostgreSQL:
  tx          the tool wraps the file in BEGIN ... COMMIT (Diesel, popx, goose, Flyway,
              Concourse's migrator)
  simple      the whole file is one simple-query message (Prisma migrate, golang-migrate's
              postgres driver, Diesel run_in_transaction = false, popx autocommit): one
              statement runs on its own, several run in one implicit transaction
  autocommit  each statement is sent and committed on its own (goose NO TRANSACTION,
              Flyway's non-transactional migrations)
  dbmate      dbmate's own `-- migrate:up [transaction:false]` markers decide (pgcalm reads
              them itself)
"""
import os
import re
import subprocess
import sys

MIRROR = os.environ.get("MIRROR", "/work/.mirror")
HERE = os.path.dirname(os.path.abspath(__file__))

# repo, rev (HEAD = the snapshot's newest commit), tool, license, path regex, direction fn
PROJECTS = [
    ("rust-lang/crates.io", "HEAD", "diesel", "MIT OR Apache-2.0",
     r"^migrations/[^/]+/(up|down)\.sql$"),
    ("LemmyNet/lemmy", "HEAD", "diesel", "AGPL-3.0", r"^migrations/[^/]+/(up|down)\.sql$"),
    ("documenso/documenso", "HEAD", "prisma", "AGPL-3.0",
     r"^packages/prisma/migrations/[^/]+/migration\.sql$"),
    ("formbricks/formbricks", "HEAD", "prisma", "AGPL-3.0",
     r"^packages/database/migration/[^/]+/migration\.sql$"),
    ("goharbor/harbor", "HEAD", "golang-migrate", "Apache-2.0",
     r"^make/migrations/postgresql/[^/]+\.(up|down)\.sql$"),
    # Flipt 2 dropped its SQL storage; v1.61.1 is the last release with it.
    ("flipt-io/flipt", "v1.61.1", "golang-migrate", "GPL-3.0",
     r"^config/migrations/postgres/[^/]+\.(up|down)\.sql$"),
    ("supabase/postgres", "HEAD", "dbmate", "PostgreSQL",
     r"^migrations/db/migrations/[^/]+\.sql$"),
    ("ory/kratos", "HEAD", "popx", "Apache-2.0",
     r"^persistence/sql/migrations/sql/[^/]+\.(up|down)\.sql$"),
    ("MarquezProject/marquez", "HEAD", "flyway", "Apache-2.0",
     r"^api/src/main/resources/marquez/db/migration/[VR][^/]*__[^/]+\.sql$"),
    ("openfga/openfga", "HEAD", "goose", "Apache-2.0", r"^assets/migrations/postgres/[^/]+\.sql$"),
    ("hatchet-dev/hatchet", "HEAD", "goose", "MIT",
     r"^cmd/hatchet-migrate/migrate/migrations/[^/]+\.sql$"),
    ("concourse/concourse", "HEAD", "concourse", "Apache-2.0",
     r"^atc/db/migration/migrations/[^/]+\.(up|down)\.sql$"),
]


def git(gitdir, *args):
    return subprocess.run(["git", "--git-dir", gitdir, *args], check=True,
                          capture_output=True).stdout.decode()


def show(gitdir, commit, path):
    return subprocess.run(["git", "--git-dir", gitdir, "show", f"{commit}:{path}"],
                          check=True, capture_output=True).stdout.decode(errors="replace")


def direction(path):
    base = os.path.basename(path)
    if re.search(r"(^|\.)down\.sql$", base):
        return "down"
    return "up"


def popx_pick(paths):
    """popx applies a dialect file (x.postgres.up.sql) instead of the generic one
    (x.up.sql) of the same version; other dialects are not PostgreSQL."""
    keyed = {}
    for p in paths:
        m = re.match(r"^(.*/\d+_[^.]+)\.(?:(postgres|cockroach|mysql|sqlite3?)\.)?"
                     r"(autocommit\.)?(up|down)\.sql$", p)
        if not m or m.group(2) not in (None, "postgres"):
            continue
        key = (m.group(1), m.group(4))
        if m.group(2) == "postgres" or key not in keyed:
            keyed[key] = p
    return sorted(keyed.values())


def mode_of(tool, gitdir, commit, path, text):
    if tool in ("prisma", "golang-migrate"):
        return "simple"
    if tool == "dbmate":
        return "dbmate"
    if tool == "diesel":
        meta = os.path.join(os.path.dirname(path), "metadata.toml")
        try:
            m = show(gitdir, commit, meta)
        except subprocess.CalledProcessError:
            return "tx"
        return "simple" if re.search(r"run_in_transaction\s*=\s*false", m) else "tx"
    if tool == "popx":
        return "simple" if ".autocommit." in path else "tx"
    if tool == "goose":
        return "autocommit" if re.search(r"^--\s*\+goose\s+NO\s+TRANSACTION", text,
                                         re.M | re.I) else "tx"
    if tool == "flyway":
        # Flyway runs a PostgreSQL migration outside a transaction when it holds a
        # statement that cannot run in one (CREATE/DROP INDEX CONCURRENTLY, ...).
        return "autocommit" if re.search(r"\bconcurrently\b", text, re.I) else "tx"
    if tool == "concourse":
        return "tx"
    raise ValueError(tool)


def main():
    rows = []
    for repo, rev, tool, lic, pattern in PROJECTS:
        gitdir = os.path.join(MIRROR, repo.replace("/", "+"), "repo")
        if not os.path.isdir(gitdir):
            sys.exit(f"{gitdir}: missing; fetch github:{repo} with the session's fetch tool")
        commit = git(gitdir, "rev-parse", f"{rev}^{{commit}}").strip()
        paths = [p for p in git(gitdir, "ls-tree", "-r", "--name-only", commit).splitlines()
                 if re.search(pattern, p)]
        if tool == "popx":
            paths = popx_pick(paths)
        for p in sorted(paths):
            text = show(gitdir, commit, p)
            rows.append((repo, commit, p, tool, direction(p),
                         mode_of(tool, gitdir, commit, p, text), lic))
        print(f"{repo:28} {commit[:12]} {tool:15} {len(paths):5} files", file=sys.stderr)
    with open(os.path.join(HERE, "manifest.tsv"), "w") as f:
        f.write("repo\tcommit\tpath\ttool\tdirection\tmode\tlicense\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    with open(os.path.join(HERE, "REPOS"), "w") as f:
        f.write("# Repositories of the corpus (fetch each with the session's fetch tool:\n"
                "# github:OWNER/NAME; it lands in /work/.mirror/OWNER+NAME/repo).\n")
        seen = []
        for r in rows:
            if (r[0], r[1]) not in seen:
                seen.append((r[0], r[1]))
        for repo, commit in seen:
            f.write(f"{repo}\t{commit}\n")
    print(f"{len(rows)} files", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Rebuilds the real-world migration corpus (bench/corpus/manifest.tsv) outside the repo:
# OUT/OWNER+NAME/PATH for every row, read from the repository snapshots that the session's
# `fetch` tool keeps under MIRROR (/work/.mirror/OWNER+NAME/repo, bare git directories).
# Nothing is downloaded here: fetch every repository in bench/corpus/REPOS first
# (fetch github:OWNER/NAME). The SQL files stay out of this repository.
#
#   bench/corpus/materialize.sh                 # OUT=/work/corpus MIRROR=/work/.mirror
#   OUT=/tmp/corpus bench/corpus/materialize.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/work/corpus}
MIRROR=${MIRROR:-/work/.mirror}
MANIFEST=$HERE/manifest.tsv

missing=0
while IFS=$'\t' read -r repo commit; do
  [[ $repo == \#* || -z $repo ]] && continue
  gitdir=$MIRROR/${repo/\//+}/repo
  if ! git --git-dir="$gitdir" cat-file -e "$commit^{commit}" 2>/dev/null; then
    echo "missing: $repo at $commit (fetch github:$repo with the session's fetch tool)" >&2
    missing=1
  fi
done <"$HERE/REPOS"
((missing == 0)) || exit 1

rm -rf "$OUT"
mkdir -p "$OUT"
n=0
# One `git cat-file --batch` per repository (about 3,000 files in a few seconds).
for repo in $(tail -n +2 "$MANIFEST" | cut -f1 | uniq); do
  gitdir=$MIRROR/${repo/\//+}/repo
  # The files beside a migration that change how its tool runs it (Diesel's
  # metadata.toml, Flyway's V1__x.sql.conf: `pgcalm lint --tool` reads them), when the
  # snapshot has them: `?` marks them optional.
  awk -F'\t' -v r="$repo" 'NR > 1 && $1 == r {
    print $2 ":" $3
    if ($4 == "diesel") { d = $3; sub(/\/[^\/]*$/, "", d); print "?" $2 ":" d "/metadata.toml" }
    if ($4 == "flyway") print "?" $2 ":" $3 ".conf"
  }' "$MANIFEST" | awk '!seen[$0]++' >"$OUT/.want"
  python3 - "$gitdir" "$OUT/${repo/\//+}" "$OUT/.want" <<'PY'
import os, subprocess, sys
gitdir, dest, want = sys.argv[1:]
wanted = open(want).read().splitlines()
optional = [w.startswith("?") for w in wanted]
specs = [w.lstrip("?") for w in wanted]
p = subprocess.run(["git", "--git-dir", gitdir, "cat-file", "--batch"],
                   input=("\n".join(specs) + "\n").encode(), capture_output=True, check=True)
out, i = p.stdout, 0
for spec, opt in zip(specs, optional):
    header_end = out.index(b"\n", i)
    header = out[i:header_end].split()
    if header[-1] == b"missing":
        if opt:
            i = header_end + 1
            continue
        sys.exit(f"missing in snapshot: {spec}")
    size = int(header[2])
    body = out[header_end + 1:header_end + 1 + size]
    i = header_end + 1 + size + 1
    path = os.path.join(dest, spec.split(":", 1)[1])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(body)
PY
  n=$((n + $(grep -vc '^?' "$OUT/.want")))
done
rm -f "$OUT/.want"
cp "$MANIFEST" "$OUT/manifest.tsv"
echo "$n files under $OUT"

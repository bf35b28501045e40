#!/usr/bin/env bash
# The shape and build cost of the workspace at two commits, side by side in one run:
#   bench/build_shape.sh [BEFORE_REF] [AFTER_REF]     (defaults: the issue-13 base, HEAD)
# Per commit: crates with their lines of Rust, public items per library crate (rustdoc
# JSON: the items a user of the crate can name by path, not variants or fields), direct and total dependencies,
# and the cold `cargo build --release --locked -p pgcalm-cli` wall and CPU time (median of RUNS,
# alternating the two commits, each in its own empty target directory). The table goes to
# stdout and to this script's section of bench/RESULTS.md.
# Needs a nightly toolchain for the rustdoc JSON (rustup toolchain install nightly); set
# SKIP_API=1 without it. RUNS (default 1) cold builds per commit: each is minutes
# (SKIP_BUILD=1: none).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BEFORE=${1:-b6a1f3f}
AFTER=${2:-HEAD}
RUNS=${RUNS:-1}
WORK=${WORK:-/tmp/pgcalm-build-shape}
source "$ROOT/bench/common.sh"
require_tools git cargo python3

rm -rf "$WORK"
mkdir -p "$WORK"
declare -A DIR
for side in before after; do
  ref=$BEFORE
  [[ $side == after ]] && ref=$AFTER
  DIR[$side]="$WORK/$side"
  git -C "$ROOT" worktree add --detach --quiet "${DIR[$side]}" "$ref"
done
cleanup() {
  for side in before after; do git -C "$ROOT" worktree remove --force "${DIR[$side]}" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# crates DIR: "name lines" per crate.
crates() {
  local c
  for c in "$1"/crates/*/; do
    printf '%s %s\n' "$(basename "$c")" "$(find "$c" -name '*.rs' -print0 | xargs -0 cat | wc -l)"
  done
}

# api DIR CRATE: public items of a library crate (paths of the crate itself in rustdoc JSON).
api() {
  local dir=$1 crate=$2
  [[ -f $dir/crates/$crate/src/lib.rs ]] || { echo "-"; return; }
  (cd "$dir" && cargo +nightly rustdoc --quiet --locked -p "$crate" --lib \
    --target-dir "$WORK/doc-target" -- -Z unstable-options --output-format json) >/dev/null 2>&1 \
    || { echo "?"; return; }
  python3 - "$WORK/doc-target/doc/${crate//-/_}.json" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
# Items a user names by path: not enum variants, fields or methods.
kinds = {"module", "struct", "enum", "trait", "function", "type_alias", "constant",
         "static", "macro", "union", "trait_alias"}
print(sum(1 for p in doc["paths"].values() if p["crate_id"] == 0 and p["kind"] in kinds))
EOF
}

# deps DIR: "direct total" dependencies of the pgcalm binary's build (normal deps, all
# workspace crates' direct ones counted once; total = every package in its graph).
deps() {
  (cd "$1" && cargo tree --locked -e normal -p pgcalm-cli --prefix none --no-dedupe 2>/dev/null) |
    python3 -c '
import sys
lines = [l.split()[0] for l in sys.stdin if l.strip()]
print(len(set(lines)) - 1)'
}

direct() {
  cat "$1"/crates/*/Cargo.toml | python3 -c '
import sys, re
sect = None; names = set()
for line in sys.stdin:
    m = re.match(r"\[(.*)\]", line.strip())
    if m: sect = m.group(1); continue
    if sect == "dependencies":
        m = re.match(r"([A-Za-z0-9_-]+)\s*[.=]", line.strip())
        if m and not m.group(1).startswith("pgcalm-"): names.add(m.group(1))
print(len(names))'
}

cold_build() {
  local dir=$1
  rm -rf "$WORK/build-target"
  # "wall cpu": CPU time (user + sys, all processes) is the steadier figure when other
  # work shares the cores.
  (cd "$dir" && /usr/bin/time -f '%e %U %S' -o "$WORK/build-time" \
    cargo build --release --locked --quiet -p pgcalm-cli --target-dir "$WORK/build-target")
  awk '{printf "%.0f:%.0f", $1, $2 + $3}' "$WORK/build-time"
}

declare -A BUILDS
[[ ${SKIP_BUILD:-} == 1 ]] && RUNS=0 && BUILDS[before]=- && BUILDS[after]=-
for ((i = 0; i < RUNS; i++)); do
  for side in before after; do
    step "cold release build $((i + 1))/$RUNS: $side"
    BUILDS[$side]+="$(cold_build "${DIR[$side]}") "
  done
done
rm -rf "$WORK/build-target"
# median FIELD: of "wall:cpu" pairs, the median of field 1 (wall) or 2 (cpu).
median() { tr ' ' '\n' | grep -v '^$' | cut -d: -f"$1" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

TABLE=$(
  echo "Workspace shape, $(git -C "$ROOT" rev-parse --short "$BEFORE") (before) vs $(git -C "$ROOT" rev-parse --short "$AFTER") (after); $(nproc) cores, $(date -u +%Y-%m-%d)."
  echo
  echo "| crate | lines before | lines after | public items before | public items after |"
  echo "|---|---:|---:|---:|---:|"
  join -a1 -a2 -e - -o 0,1.2,2.2 <(crates "${DIR[before]}" | sort) <(crates "${DIR[after]}" | sort) |
    while read -r name lb la; do
      if [[ ${SKIP_API:-} == 1 ]]; then ab=-; aa=-; else
        ab=$( [[ $lb == - ]] && echo - || api "${DIR[before]}" "$name")
        aa=$( [[ $la == - ]] && echo - || api "${DIR[after]}" "$name")
      fi
      echo "| $name | $lb | $la | $ab | $aa |"
    done
  echo
  echo "| figure | before | after |"
  echo "|---|---:|---:|"
  echo "| direct dependencies (distinct, all crates) | $(direct "${DIR[before]}") | $(direct "${DIR[after]}") |"
  echo "| packages in the pgcalm binary's graph | $(deps "${DIR[before]}") | $(deps "${DIR[after]}") |"
  echo "| cold \`cargo build --release -p pgcalm-cli\`: wall s (median of $RUNS) | $(echo "${BUILDS[before]}" | median 1) | $(echo "${BUILDS[after]}" | median 1) |"
  echo "| the same build: CPU s, user + sys (median of $RUNS) | $(echo "${BUILDS[before]}" | median 2) | $(echo "${BUILDS[after]}" | median 2) |"
)
rm -rf "$WORK/doc-target"
printf '%s\n' "$TABLE"
printf '%s\n' "$TABLE" | python3 "$ROOT/bench/results_section.py" build_shape.sh "$ROOT/bench/RESULTS.md"

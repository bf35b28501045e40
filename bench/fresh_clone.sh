#!/usr/bin/env bash
# Fresh clone to lab report: the README's first command, timed from nothing.
#   bench/fresh_clone.sh [REF...]        (default: HEAD)
# Per REF: `git clone` of this repository into an empty directory, then `./dev.sh lab`
# there as the README says (its build starts from an empty target directory; this
# machine's cargo registry cache is kept, as the network only reaches the registries),
# timed in two parts: the build (until the binary is written) and the lab (until
# lab-report/report.html exists). The clone's embedded cluster is removed afterwards
# (`pgcalm down --volumes`). A row per REF, in one run; the table goes to stdout and to
# this script's section of bench/RESULTS.md. Extra lab arguments: LAB_ARGS="--rows 1000000".
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/pgcalm-fresh-clone}
LAB_ARGS=${LAB_ARGS:-}
source "$ROOT/bench/common.sh"
require_tools git cargo python3
(($# == 0)) && set -- HEAD

rows=()
for ref in "$@"; do
  commit=$(git -C "$ROOT" rev-parse --short "$ref")
  dir="$WORK/$commit"
  [[ -d $dir/.pgcalm ]] && (cd "$dir" && ./target/*/pgcalm down --volumes >/dev/null 2>&1 || true)
  rm -rf "$dir"
  mkdir -p "$WORK"
  step "fresh clone of $commit, then ./dev.sh lab $LAB_ARGS"
  git clone --quiet "$ROOT" "$dir"
  git -C "$dir" checkout --quiet "$commit"
  start=$(date +%s.%N)
  # shellcheck disable=SC2086 # LAB_ARGS is a list of arguments
  (cd "$dir" && ./dev.sh lab $LAB_ARGS) > "$WORK/$commit.log" 2>&1 || {
    tail -n 20 "$WORK/$commit.log" >&2
    echo "bench: ./dev.sh lab failed at $commit (log: $WORK/$commit.log)" >&2
    exit 1
  }
  end=$(date +%s.%N)
  bin=$(find "$dir/target" -maxdepth 2 -type f -name pgcalm | head -n 1)
  built=$(stat -c %Y "$bin")
  report=$(stat -c %Y "$dir/lab-report/report.html")
  build_s=$(echo "$built - $start" | bc)
  lab_s=$(echo "$report - $built" | bc)
  total_s=$(echo "$end - $start" | bc)
  rows+=("| $commit | $(basename "$(dirname "$bin")") | $(printf '%.0f' "$build_s") | $(printf '%.0f' "$lab_s") | $(printf '%.0f' "$total_s") |")
  (cd "$dir" && "$bin" down --volumes >/dev/null 2>&1 || true)
done

TABLE=$(
  echo "Fresh clone to lab report (\`./dev.sh lab${LAB_ARGS:+ $LAB_ARGS}\`), $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M') UTC, load average before: $(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  echo "| commit | profile | build, s | lab, s | total, s |"
  echo "|---|---|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
)
printf '%s\n' "$TABLE"
printf '%s\n' "$TABLE" | python3 "$ROOT/bench/results_section.py" fresh_clone.sh "$ROOT/bench/RESULTS.md"

#!/usr/bin/env bash
# concurrently-in-transaction per migration tool on the real-world corpus (issue 15
# point 3), up migrations only, one pgcalm process per file, in three ways:
#   all-tx    --assume-in-transaction on every file (what a team had before --tool:
#             all or nothing)
#   tool      --tool <the manifest's tool> (popx and concourse, which pgcalm does not
#             know, keep --assume-in-transaction)
#   detected  no flag: the tool detected from each file's layout
# Prints, per tool: files, files failed (exit 2), concurrently-in-transaction findings.
#
#   PGCALM=target/debug/pgcalm bench/corpus/tool_modes.sh
#   MODES=all-tx PGCALM=/work/main/target/debug/pgcalm bench/corpus/tool_modes.sh  # before
set -euo pipefail
CORPUS=${CORPUS:-/work/corpus}
PGCALM=${PGCALM:-target/debug/pgcalm}
PGCALM=$(realpath "$PGCALM")
OUT=${OUT:-/tmp/pgcalm-tool-modes}
MODES=${MODES:-all-tx tool detected}
JOBS=${JOBS:-2}
export CORPUS PGCALM OUT
rm -rf "$OUT" && mkdir -p "$OUT/cwd"

one() {
  local mode=$1 repo=$2 path=$3 tool=$4 flags=()
  local file=$CORPUS/${repo/\//+}/$path
  case $mode in
  all-tx) flags=(--assume-in-transaction) ;;
  tool) case $tool in
    popx | concourse) flags=(--assume-in-transaction) ;;
    *) flags=(--tool "$tool") ;;
    esac ;;
  esac
  cd "$OUT/cwd"
  local rc=0 n
  n=$("$PGCALM" lint --format json "${flags[@]}" "$file" 2>/dev/null |
    jq '[.files[].findings[] | select(.rule == "concurrently-in-transaction")] | length' 2>/dev/null) || rc=$?
  "$PGCALM" lint --format json "${flags[@]}" "$file" >/dev/null 2>&1 || rc=$?
  printf '%s\t%s\t%s\t%s\n' "$mode" "$tool" "$rc" "${n:-0}"
}
export -f one

for mode in $MODES; do
  awk -F'\t' -v m="$mode" 'NR > 1 && $5 == "up" { print m; print $1; print $3; print $4 }' "$CORPUS/manifest.tsv"
done | xargs -d '\n' -n 4 -P "$JOBS" bash -c 'one "$@"' _ >"$OUT/rows.tsv"

printf '%-9s %-15s %6s %7s %s\n' mode tool files failed concurrently-in-transaction
awk -F'\t' '
  { k = $1 "\t" $2; files[k]++; if ($3 == 2) failed[k]++; cit[k] += $4
    t = $1 "\tTOTAL"; files[t]++; if ($3 == 2) failed[t]++; cit[t] += $4 }
  END { for (k in files) { split(k, p, "\t"); printf "%-9s %-15s %6d %7d %d\n", p[1], p[2], files[k], failed[k], cit[k] } }
' "$OUT/rows.tsv" | sort

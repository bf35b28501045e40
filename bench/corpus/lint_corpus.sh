#!/usr/bin/env bash
# Lints the real-world corpus (bench/corpus/manifest.tsv, rebuilt by materialize.sh) with
# pgcalm, and with squawk beside it, each file in the mode its migration tool runs it
# (column `mode` of the manifest), one process per file; then prints the figures:
# files, statements, parse failures, crashes, files with findings, findings per rule,
# per tool. Raw JSON of every run (pgcalm with --locks: each statement's locks, which
# summarise.py classes reads) stays in OUT for summarise.py (sample, classes, summary).
#
#   bench/corpus/lint_corpus.sh                      # up migrations, pgcalm + squawk
#   SQUAWK= bench/corpus/lint_corpus.sh              # pgcalm only
#   DIRECTION=all PGCALM=target/release/pgcalm bench/corpus/lint_corpus.sh
#   python3 bench/corpus/summarise.py sample --linter pgcalm -n 50 --seed 15
#
# Environment: CORPUS (default /work/corpus), OUT (default /tmp/pgcalm-corpus-lint),
# PGCALM (default /work/main/target/debug/pgcalm), SQUAWK (a squawk binary; default
# /tmp/corpus-squawk/bin/squawk, installed there from PyPI squawk-cli==$SQUAWK_VERSION,
# 2.70.0, when missing; empty: skip squawk), DIRECTION (up | down | all, default up:
# what a team lints in CI), PG_VERSION (default 15), JOBS (parallel files, default 2).
#
# Modes (how the tool sends the file; see build_manifest.py), and the flags they get:
#   tx          --assume-in-transaction
#   simple      one statement: no flag (it runs alone); several: --assume-in-transaction
#               (one simple-query message runs them in one implicit transaction)
#   autocommit  no flag
#   dbmate      no flag (pgcalm reads dbmate's `-- migrate:up [transaction:false]` itself;
#               squawk gets --assume-in-transaction unless transaction:false)
# FLAGS=tool: each file with `--tool <its manifest tool>` instead (pgcalm decides the
# transaction mode from the tool and the file's layout and markers); popx and concourse,
# which pgcalm does not know, keep the flags of their mode above. squawk keeps the modes.
# goose files (unless FLAGS=tool) are linted through a copy whose lines outside `-- +goose Up` are blank
# (goose runs only that section going up; line numbers are kept).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export CORPUS=${CORPUS:-/work/corpus}
export OUT=${OUT:-/tmp/pgcalm-corpus-lint}
export PGCALM=${PGCALM:-/work/main/target/debug/pgcalm}
export DIRECTION=${DIRECTION:-up}
export PG_VERSION=${PG_VERSION:-15}
JOBS=${JOBS:-2}
export FLAGS=${FLAGS:-mode}
SQUAWK_VERSION=${SQUAWK_VERSION:-2.70.0}
export SQUAWK=${SQUAWK-/tmp/corpus-squawk/bin/squawk}

[[ -f $CORPUS/manifest.tsv ]] || { echo "$CORPUS: no corpus; run bench/corpus/materialize.sh" >&2; exit 2; }
cmp -s "$CORPUS/manifest.tsv" "$HERE/manifest.tsv" ||
  { echo "$CORPUS is not the corpus of bench/corpus/manifest.tsv; run materialize.sh" >&2; exit 2; }
[[ -x $PGCALM ]] || { echo "$PGCALM: no pgcalm binary (PGCALM=...)" >&2; exit 2; }
if [[ -n $SQUAWK ]] && ! "$SQUAWK" --version 2>/dev/null | grep -qx "squawk $SQUAWK_VERSION"; then
  venv=$(dirname "$(dirname "$SQUAWK")")
  echo "==> installing squawk-cli $SQUAWK_VERSION into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "squawk-cli==$SQUAWK_VERSION"
fi

rm -rf "$OUT"
mkdir -p "$OUT/pgcalm" "$OUT/squawk" "$OUT/view" "$OUT/cwd"
python3 "$HERE/summarise.py" prepare # writes $OUT/jobs.tsv: id, file to lint, mode, ...

one() {
  local id=$1 file=$2 mode=$3 tool=$4 flags=() sflags=() n
  cd "$OUT/cwd" # no pgcalm.toml / .squawk.toml from the caller's directory
  case $mode in
  tx) flags=(--assume-in-transaction) ;;
  dbmate) grep -qE '^-- migrate:up.*transaction:false' "$file" || sflags=(--assume-in-transaction) ;;
  esac
  local smode=$mode mflags=("${flags[@]}")
  if [[ $FLAGS == tool && $tool != popx && $tool != concourse ]]; then
    flags=(--tool "$tool") mode=tool
  fi
  local p=$OUT/pgcalm/$id
  # (subshells: a crash is recorded from the exit code, not reported by this shell)
  ("$PGCALM" lint --format json --locks --pg-version "$PG_VERSION" "${flags[@]}" "$file" >"$p.json" 2>"$p.err"; exit $?) 2>/dev/null && rc=0 || rc=$?
  if [[ $mode == simple && $rc -le 1 ]]; then
    n=$(jq '.summary.statements' "$p.json")
    if ((n > 1)); then
      flags=(--assume-in-transaction) mflags=(--assume-in-transaction)
      ("$PGCALM" lint --format json --locks --pg-version "$PG_VERSION" "${flags[@]}" "$file" >"$p.json" 2>"$p.err"; exit $?) 2>/dev/null && rc=0 || rc=$?
    fi
  fi
  echo "$rc ${flags[*]}" >"$p.rc"
  if [[ -n $SQUAWK ]]; then
    [[ $smode == dbmate ]] || sflags=("${mflags[@]}")
    local s=$OUT/squawk/$id
    ("$SQUAWK" --reporter json --pg-version "$PG_VERSION" "${sflags[@]}" "$file" >"$s.json" 2>"$s.err"; exit $?) 2>/dev/null && rc=0 || rc=$?
    echo "$rc ${sflags[*]}" >"$s.rc"
  fi
}
export -f one

echo "==> linting $(($(wc -l <"$OUT/jobs.tsv") - 1)) files ($DIRECTION) with $PGCALM${SQUAWK:+ and $SQUAWK}" >&2
start=$(date +%s)
tail -n +2 "$OUT/jobs.tsv" | cut -f1-3,6 | tr '\t' '\n' | xargs -d '\n' -n 4 -P "$JOBS" bash -c 'one "$@"' _
echo "==> $(($(date +%s) - start)) s" >&2
python3 "$HERE/summarise.py" summary | tee "$OUT/summary.md"

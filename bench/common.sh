# Shared by the bench scripts (sourced; ROOT and WORK set by the caller): the tool check,
# step headings, the release build, and a fresh working directory with its own cluster.

step() { printf '\n== %s\n' "$*" >&2; }

# require_tools TOOL...: stop with a message naming the first one missing.
require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
  done
}

# build_pgcalm: sets PGCALM to a release binary (PGCALM_BIN if given, else a build in
# target/bench, apart from the developer's own target dir).
build_pgcalm() {
  if [[ -n ${PGCALM_BIN:-} ]]; then
    PGCALM=$PGCALM_BIN
    return
  fi
  step "building pgcalm (release)"
  cargo build --release --quiet -p pgcalm-cli --manifest-path "$ROOT/Cargo.toml" \
    --target-dir "$ROOT/target/bench"
  PGCALM="$ROOT/target/bench/release/pgcalm"
}

# fresh_workdir DIR...: removes WORK (and the embedded cluster a previous run left in it),
# creates WORK as a pgcalm project (`pgcalm init`) and the given directories, and moves
# there.
fresh_workdir() {
  if [[ -d $WORK/.pgcalm ]]; then (cd "$WORK" && "$PGCALM" down --volumes >/dev/null 2>&1 || true); fi
  rm -rf "$WORK"
  mkdir -p "$WORK" "$@"
  cd "$WORK"
  "$PGCALM" init >/dev/null
}

pgcalm() { "$PGCALM" --migrations-dir "$ROOT/migrations" "$@"; }

# embedded_cluster_env: after `pgcalm up` in WORK, sets PG_PORT and hands the cluster's
# password to the tools that connect by themselves, through the environment only:
# PGPASSFILE for psql (libpq reads the 0600 passfile pgcalm wrote), PG_PASSWORD for the
# peer's DB_PASSWORD.
embedded_cluster_env() {
  PG_PORT=$(sed -n 's/^port=//p' "$WORK/.pgcalm/cluster.state")
  export PGPASSFILE="$WORK/.pgcalm/pgpass"
  PG_PASSWORD=$(head -n 1 "$PGPASSFILE" | cut -d: -f5)
}

# fmt_int N: 1234567 -> 1,234,567 (the integer part).
fmt_int() { echo "${1%.*}" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta'; }

# machine_line: "2 cores (CPU model), 8 GB RAM, Linux 6.x", for a results section.
machine_line() {
  echo "$(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r)"
}

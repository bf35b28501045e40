#!/usr/bin/env bash
# pgcalm's developer entry points. Each does all the set-up it needs.
#   ./dev.sh lab     build pgcalm and run `pgcalm lab` (the main job: the seed's Step 5,
#                    measured; extra arguments go to `pgcalm lab`)
#   ./dev.sh demo    build pgcalm and run the seed walkthrough on the embedded PostgreSQL
#   ./dev.sh test    run the whole test suite against real PostgreSQL
#   ./dev.sh install put `pgcalm` on PATH (cargo install --locked --path crates/pgcalm-cli)
#   ./dev.sh setup   only install the prerequisites (used by the others and CI; `test`
#                    adds chromium, which only the tests need)
set -euo pipefail
cd "$(dirname "$0")"

# Debian packages pgcalm needs: libclang-dev (pg_query's build), the PostgreSQL server
# binaries (embedded cluster and tests), its client (pgcalm psql), curl + bc (the
# walkthrough's API watch loop), pgbouncer (`pgcalm up --pooler` and the tests through a
# pooler).
PACKAGES=(libclang-dev postgresql postgresql-client pgbouncer curl bc)
# Only the tests need these: chromium renders the lab's report.html headless.
TEST_PACKAGES=(chromium)

need_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # Any installed server major will do (pgcalm searches /usr/lib/postgresql/*/bin).
  if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    local keep=()
    for p in "${missing[@]}"; do [[ $p == postgresql ]] || keep+=("$p"); done
    missing=("${keep[@]}")
  fi
  echo "${missing[@]}"
}

# setup [PACKAGE...]: install what is missing of PACKAGES and the given extra packages.
setup() {
  local missing
  missing=$(need_packages "${PACKAGES[@]}" "$@")
  if [[ -n $missing ]]; then
    if [[ $(id -u) == 0 ]]; then
      echo "==> installing: $missing"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    else
      echo "missing packages: $missing" >&2
      echo "run: sudo apt-get update && sudo apt-get install -y $missing" >&2
      exit 1
    fi
  fi
  # Commit subjects of at most 72 characters (.githooks/commit-msg), in a git checkout.
  if [[ -d .git || -f .git ]] && [[ -z $(git config core.hooksPath || true) ]]; then
    git config core.hooksPath .githooks
  fi
  command -v cargo >/dev/null || {
    echo "cargo not found: install Rust from https://rustup.rs (rustup default stable)" >&2
    exit 1
  }
}

case "${1:-}" in
  setup) setup ;;
  lab)
    setup
    # The quick profile (Cargo.toml): a cold build in 40% of the release build's CPU time.
    cargo build --profile quick --locked -p pgcalm-cli
    shift
    target/quick/pgcalm lab "$@"
    ;;
  demo)
    setup
    cargo build --profile quick --locked -p pgcalm-cli
    export PATH="$PWD/target/quick:$PATH"
    demo/seed_walkthrough.sh
    ;;
  test)
    setup "${TEST_PACKAGES[@]}"
    cargo test --workspace --locked
    ;;
  install)
    setup
    # A release build into ~/.cargo/bin (on PATH with rustup), like any cargo-installed tool.
    cargo install --locked --path crates/pgcalm-cli
    command -v pgcalm >/dev/null || echo "note: add $(dirname "$(command -v cargo)") to PATH" >&2
    ;;
  *)
    sed -n '2,9p' "$0"
    exit 2
    ;;
esac

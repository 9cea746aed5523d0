#!/usr/bin/env bash
# Runs every check pam-mfa has, in the order CI runs them: packages, formatting, lints,
# both builds, the test suites, then the demo as a smoke test of the release build.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

section() {
    printf '\n==== %s ====\n' "$*"
}

section "Packages (scripts/deps.sh)"
scripts/deps.sh

section "Formatting (cargo fmt --check)"
cargo fmt --check

section "Lints (cargo clippy --all-targets --locked -- -D warnings)"
cargo clippy --all-targets --locked -- -D warnings

# The debug module carries the PAM_MFA_TEST_PANIC hook that the panic test loads.
section "Debug build (cargo build --locked)"
cargo build --locked

section "Release build (cargo build --release --locked)"
cargo build --release --locked

# One private PostgreSQL (TLS, client certificates) for every test binary of the fleet
# store; a binary run alone starts its own. It stops when this script ends.
section "A private PostgreSQL (tests/pg/start.sh)"
pg_parent=$(mktemp -d)
pg_dir="$pg_parent/pg"
trap 'tests/pg/start.sh --stop "$pg_dir"; rmdir "$pg_parent"' EXIT
tests/pg/start.sh "$pg_dir" --owner-pid $$
# shellcheck source=/dev/null
. "$pg_dir/env"

# tests/conversation.rs runs the module's conversation paths under valgrind's memcheck
# (installed by deps.sh), with an application that swaps its PAM_CONV mid-call.
section "Tests (cargo test --release --locked)"
cargo test --release --locked

section "Smoke test (scripts/demo.sh --no-build)"
# Its last line, "demo: N passed, N failed", closes the run; set -e stops at any failure.
scripts/demo.sh --no-build

# Real sshd, ssh, sudo, su and login through the README's stacks, and the .deb; only with
# CI=true or PAM_MFA_E2E=1, as root (they add users and /etc/pam.d files), else they skip.
section "End-to-end tests (tests/e2e/run.sh --no-build)"
tests/e2e/run.sh --no-build

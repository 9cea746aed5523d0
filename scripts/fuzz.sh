#!/usr/bin/env bash
# Runs each cargo-fuzz target for a while (default 60 s each): the policy parser, the
# secret record parser, the state file decoder and the code-input parser.
#
#   scripts/fuzz.sh [SECONDS]
#
# cargo-fuzz needs nightly compiler flags; on a stable toolchain RUSTC_BOOTSTRAP=1 lets
# them through. New findings land in fuzz/artifacts/<target>/: minimize them and copy them
# into fuzz/corpus/<target>/, where tests/fuzz_corpus.rs replays them on every test run.
set -euo pipefail

seconds=${1:-60}
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
for target in policy record state code_input; do
    printf '\n==== fuzzing %s for %s s ====\n' "$target" "$seconds"
    # Work on a copy, so the checked-in corpus only grows by deliberate commits.
    work=$(mktemp -d)
    cp fuzz/corpus/"$target"/* "$work"/
    cargo fuzz run "$target" "$work" -- -max_total_time="$seconds" -max_len=8192
    rm -rf "$work"
done

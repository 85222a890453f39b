#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) on the stable toolchain.
# cargo-fuzz needs nightly only for sanitizers; `--sanitizer none` still has
# libFuzzer's coverage guidance, and panics are what safe Rust can fail with.
# New interesting inputs go to target/fuzz/corpus (the committed seeds in
# fuzz/corpus stay as they are); a crash is saved under fuzz/artifacts/ and
# fails the run.
set -euo pipefail
seconds="${1:-60}"
cd "$(dirname "$0")/.."
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz (once; unoptimised, it only drives the build)" >&2
    CARGO_PROFILE_DEV_DEBUG=0 cargo install cargo-fuzz --locked --quiet --debug
fi
targets=$(cargo fuzz list --fuzz-dir fuzz)
cargo fuzz build --fuzz-dir fuzz --dev --sanitizer none
for target in $targets; do
    work="target/fuzz/corpus/$target"
    mkdir -p "$work"
    echo "fuzz: $target for ${seconds}s" >&2
    cargo fuzz run --fuzz-dir fuzz --dev --sanitizer none "$target" "$work" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -max_len=8192 -print_final_stats=1 2>&1 |
        grep -E "^(stat::number_of_executed_units|stat::new_units_added|==|SUMMARY|thread|panicked|Done)" || true
    # grep hides libFuzzer's progress lines; the exit status is cargo fuzz's.
    status=${PIPESTATUS[0]}
    if [ "$status" -ne 0 ]; then
        echo "fuzz: $target failed; the input is in fuzz/artifacts/$target/" >&2
        exit "$status"
    fi
done

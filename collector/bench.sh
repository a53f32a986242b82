#!/usr/bin/env bash
# Runs the collector load benchmark (collector/benches/load.rs) in an optimised build.
# The workspace's release profile is tuned for the wasm tag (opt-level "z", fat LTO, one codegen
# unit); a server wants speed and a build that fits in CI time, so the bench profile is overridden
# here through Cargo's environment configuration instead of editing the shared Cargo.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/target-collector}"
export CARGO_PROFILE_BENCH_OPT_LEVEL=3
export CARGO_PROFILE_BENCH_LTO=false
export CARGO_PROFILE_BENCH_CODEGEN_UNITS=16
export CARGO_PROFILE_BENCH_DEBUG=false
exec cargo bench -p tandem-collector --bench load "$@"

#!/usr/bin/env bash
# `make test`: what the tests need (deploy/setup.sh), formatting, lints, the whole test suite,
# then the attribution's calibration on 50 seeded cities through the real pipeline
# (benches/calibration.sh with CHECK=1, two seeds at a time: benches/benches/calibration.rs).
# Everything is built once, in the `ci` profile (optimized like release, without LTO: quick to
# build and fast to run); the calibration uses the same binaries. How long each step took is
# printed before the calibration and at the end (also when a step fails), so a slow run says
# where its time went.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
started=$(date +%s)
done_steps=()
current=""
timings() {
  local t=$(( $(date +%s) - started ))
  echo "make test: ${done_steps[*]:-nothing done}${current:+; stopped in $current}; total $((t / 60)) min $((t % 60)) s"
}
trap 'timings' EXIT
step() {
  local name=$1 t0
  shift
  t0=$(date +%s)
  current=$name
  "$@"
  current=""
  done_steps+=("$name $(( $(date +%s) - t0 )) s")
}
step setup bash deploy/setup.sh
step fmt cargo fmt --all -- --check
step clippy cargo clippy --locked --workspace --all-targets --all-features -- -D warnings
step build cargo test --locked --workspace --profile ci --no-run
step build-calibration cargo bench --locked --workspace --profile ci --bench calibration --no-run
step tests cargo test --locked --workspace --profile ci
timings
rm -rf target/calibration-test
step calibration env CHECK=1 PROFILE=ci PROGRESS=10 LANES=2 bash benches/calibration.sh 50 1 target/calibration-test

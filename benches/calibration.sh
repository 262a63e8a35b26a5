#!/usr/bin/env bash
# Calibration of the attribution on ground truth: SEEDS seeded cities, each through the real
# pipeline (simulator -> mosquitto_pub -> Mosquitto -> collector -> ClickHouse 18.16 -> the
# campaign report), compared with the simulator's truth. The program is
# benches/benches/calibration.rs (its doc says what it measures); this is its command line.
# One row per seed in $OUT/seeds.csv (seeds already there are not run again, so an
# interrupted run resumes), the summary on stdout and in $OUT/summary.txt. With CHECK=1 the
# exit status says whether the targets hold (the report's headline interval, the board-day
# cluster bootstrap's, covers the expected lift in 90-98.5 % of seeds, the sd of error / SE
# is within 0.8-1.25, judged from 20 seeds; with EFFECT_PP=0, null seeds, the interval excludes 0 in
# at most 7 %; units within 2 % of the truth's devices; no interval including 0 without
# "underpowered" when the planned lift was beyond reach). EFFECT_PP sets the campaign's true
# lift. SETTING=realistic runs the real world's city (address mix, consent, +0.4 pp over 14
# days: the program's REALISTIC) instead of the demo's; SETTING=geo a city with 30 stores of the
# brand for the store-level estimate (GEO), judged like the device comparison: coverage and
# spread from 20 seeds with a store-level interval, and with EFFECT_PP=0 excluding 0 in <= 7 %.
# PROFILE picks the cargo profile (default release; `make test` uses ci). PROGRESS=N prints a
# line every N seeds instead of every seed's row. LANES seeds run at a time (default 2).
# Usage: [CHECK=1] [EFFECT_PP=X] [SETTING=demo|realistic|geo] [PROFILE=P] [PROGRESS=N] [LANES=L] bash benches/calibration.sh [SEEDS [FIRST_SEED [OUT]]]
# (default 50, 1, target/calibration)
set -euo pipefail
cd "$(dirname "$0")/.."
# cargo runs the program in benches/: the output directory is made absolute here.
args=(--seeds "${1:-50}" --first "${2:-1}" --out "$(realpath -m "${3:-target/calibration}")"
      --lanes "${LANES:-2}" --progress "${PROGRESS:-1}")
[ "${CHECK:-0}" = 1 ] && args+=(--check)
[ -n "${EFFECT_PP:-}" ] && args+=(--effect-pp "$EFFECT_PP")
[ -n "${SETTING:-}" ] && args+=(--setting "$SETTING")
exec cargo bench --profile "${PROFILE:-release}" --locked --workspace --bench calibration -- "${args[@]}"

# The two commands of the README. Both install what they need first (deploy/setup.sh).
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: demo test setup bench cross calibrate

setup:
	@bash deploy/setup.sh

## make demo: the main job, end to end on this machine
demo: setup
	cargo build --release --locked -p sensor-agent -p simulator -p collector -p attribution -p dashboard -p testkit --bins
	bash deploy/demo.sh

## make test: formatting, lints, the whole test suite, and the attribution's calibration on
## 50 seeded cities through the real pipeline (deploy/test.sh; about 25 minutes)
test:
	bash deploy/test.sh

## make calibrate: the calibration alone (figures in benches/README.md)
calibrate: setup
	CHECK=1 bash benches/calibration.sh 50

## make bench: the figures recorded in benches/README.md
bench: setup
	bash benches/agent.sh
	bash benches/sim.sh

## make cross: the agent for a 64-bit Raspberry Pi, tested under qemu
cross: setup
	bash deploy/cross.sh

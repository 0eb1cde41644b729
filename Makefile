# firstspike: `make sim` runs the whole flow, `make test` the test suite.
# Both create the project virtual environment (.venv) first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
FS := $(VENV)/bin/firstspike
STAMP := $(VENV)/.installed
PES ?= 16
IMAGES ?= 0
# digits recipe: cnn (default), mlp or resnet8 (residual)
MODEL ?= cnn
# ttfs (default: conversion-aware training), rate (rate_if neurons: noise-aware training, T=16)
# or diff (diff_if neurons: the float network, training-free, threshold iteration, T=16)
CODING ?= ttfs
CONVERT_FLAGS :=
ifeq ($(CODING),ttfs)
MDIR := build/model/$(MODEL)
METHOD := cat
# the CNN's one-channel first layer runs unfolded (im2col: same spikes, a third fewer
# accumulator accesses; docs/hardware.md "Input unfolding")
ifeq ($(MODEL),cnn)
CONVERT_FLAGS := --unfold-input
endif
else ifeq ($(CODING),rate)
MDIR := build/model/$(MODEL)-rate
METHOD := noise
else ifeq ($(CODING),diff)
MDIR := build/model/$(MODEL)-diff
METHOD := float
CONVERT_FLAGS := --neuron diff_if --calibration iteration
else
$(error CODING must be ttfs, rate or diff, not $(CODING))
endif
# compiled simulators of this checkout stay beside its other build outputs
export FIRSTSPIKE_CACHE_DIR ?= $(CURDIR)/build/cache

.PHONY: all venv sim synth report compare bench bench-accuracy fuzz formal mutation lint test test-slow clean

all: sim

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# pinned first, from its own line, so nothing can resolve a newer (CUDA) torch
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

$(MDIR)/ann.pt: $(STAMP)
	$(FS) train --arch $(MODEL) --method $(METHOD) --out $@

$(MDIR)/snn.npz: $(MDIR)/ann.pt Makefile
	$(FS) convert $< $(CONVERT_FLAGS) --out $@

sim: $(MDIR)/snn.npz
	$(FS) sim --model $(MDIR)/snn.npz --pes $(PES) --images $(IMAGES)

# Yosys from PyPI: generic cells + iCE40 (several minutes for 16 PEs)
synth: $(MDIR)/snn.npz
	$(FS) synth --model $(MDIR)/snn.npz --pes $(PES)

# HTML report with plots (after make sim; includes make synth's results if present)
report: $(MDIR)/snn.npz
	@test -f build/sim/report.json || $(MAKE) sim
	$(FS) report

# every coding x calibration x T, training-free, on the digits network -> build/compare (about a minute)
compare: $(MDIR)/snn.npz
	$(FS) compare $(MDIR)/ann.pt --out build/compare

# speed of the golden model, the float model and the RTL simulation -> build/bench.json
bench: $(MDIR)/snn.npz
	$(PY) -m firstspike.bench $(MDIR)/snn.npz

# accuracy of every conversion method x T x B on real data (../shared/datasets: MNIST test set
# 8k/2k split, CIFAR-10 JPEG copy), RTL == golden on a sample -> build/accuracy; resumes
DATASETS ?= ../shared/datasets
BENCH_NETS ?= mnist-mlp,mnist-cnn
# of max,percentile,iteration,cat (cat trains a network per timing); rows of the others stay
BENCH_METHODS ?= max,percentile,iteration,cat
# more options of python -m firstspike.accuracy, e.g. "--T 16 --B 2", "--input-spikes 2 --distill 0.5"
# (CAT on two residual spikes per pixel, the float network as its teacher) or "--keep-measured"
# (measure only the timings an interrupted run left out)
BENCH_ACCURACY_FLAGS ?=
bench-accuracy: $(STAMP)
	@test -d build/data/mnist || $(PY) $(DATASETS)/mnist_split.py build/data/mnist
	@case "$(BENCH_NETS)" in *cifar10*) test -d build/data/cifar10 || $(PY) $(DATASETS)/cifar10_batches.py build/data/cifar10;; esac
	$(PY) -m firstspike.accuracy --data-dir build/data --networks $(BENCH_NETS) --methods $(BENCH_METHODS) $(BENCH_ACCURACY_FLAGS)

# >= 1000 random networks (and a quarter as many on a banded array) through the RTL on every core, bit- and cycle-exact -> build/fuzz.json
FUZZ ?= 1000
fuzz: $(STAMP)
	$(PY) -m firstspike.sim.fuzz --configs $(FUZZ)

# bounded proofs of the PE and fire unit against the spec (SymbiYosys + Yices) -> build/formal.json
formal: $(STAMP)
	$(PY) -m firstspike.sim.formal

# single-bit faults of the netlist (Yosys mutate) through the RTL check -> build/mutation.json
MUTANTS ?= 200
mutation: $(STAMP)
	$(PY) -m firstspike.sim.mutation --mutants $(MUTANTS)

lint: $(STAMP)
	$(VENV)/bin/ruff check firstspike sw hw sim tests

test: $(STAMP)
	$(VENV)/bin/ruff check firstspike sw hw sim tests
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

clean:
	rm -rf build

# The two commands of the README:
#   make serve   set up what is missing, rebuild pkg/ when the Rust sources changed, serve the page
#   make test    set up what is missing, run every test (native, then browser on the rebuilt pkg/)
# Everything is idempotent: a second run only does what changed.

SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c
PORT ?= 8000
CRATE := advlab
WASM_OUT := target/wasm32-unknown-unknown/wasm/$(CRATE).wasm
# The lab binary the result targets run (a copy keeps a long run safe from rebuilds meanwhile).
LAB ?= target/release/lab
# Rust sources that end up in the .wasm; their hash decides whether pkg/ is stale.
# (src/cli and src/train/ are native-only, not part of the .wasm.)
SOURCES = Cargo.toml Cargo.lock $(shell find src -name '*.rs' -not -path 'src/cli/*' -not -path "src/train/*" | sort)
# The gzipped .wasm must stay at or under this (issue 2).
WASM_GZ_LIMIT := 3145728

.PHONY: serve test setup setup-native setup-wasm setup-browser setup-serve pkg size native-test browser-test lab results squeeze-results specialists-results detector-results bench

serve: setup-serve pkg
	node web/serve.mjs --port $(PORT)

# In CI (CI=true) pkg/ is always rebuilt from the sources, so the browser tests prove that the
# committed sources still make a working page; locally it is rebuilt when the sources changed.
test: setup native-test
	if [ -n "$${CI:-}" ]; then FORCE_PKG=1 $(MAKE) --no-print-directory pkg; else $(MAKE) --no-print-directory pkg; fi
	$(MAKE) --no-print-directory size lab browser-test
	@echo "all tests passed"

setup: setup-native setup-wasm setup-browser

# Serving needs Node, and a Rust toolchain only when pkg/ is stale.
setup-serve:
	command -v node >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs; }
	if [ "$$(cat pkg/.source-hash 2>/dev/null)" != "$$(cat $(SOURCES) | sha256sum | cut -d' ' -f1)" ]; then $(MAKE) --no-print-directory setup-wasm; fi

setup-native:
	command -v cargo >/dev/null || { echo "cargo (rustup) is required"; exit 1; }

# TOOLCHAIN.md: Debian's rustc-web + rust-web-src build std for wasm32 (-Zbuild-std); rustup's
# rust-lld links. wasm-bindgen-cli must match the wasm-bindgen version in Cargo.lock.
APT_UPDATED := /tmp/.advlab-apt-updated
$(APT_UPDATED):
	apt-get update -qq
	touch $@

setup-wasm:
	if ! dpkg -s rustc-web cargo-web rust-web-src >/dev/null 2>&1; then
	  [ -f $(APT_UPDATED) ] || { apt-get update -qq && touch $(APT_UPDATED); }
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rustc-web cargo-web rust-web-src
	fi
	want=$$(grep -A1 '^name = "wasm-bindgen"$$' Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p')
	have=$$(wasm-bindgen --version 2>/dev/null | awk '{print $$2}' || true)
	if [ "$$have" != "$$want" ]; then cargo install -q wasm-bindgen-cli --version "$$want"; fi

setup-browser:
	if ! command -v chromium >/dev/null; then
	  [ -f $(APT_UPDATED) ] || { apt-get update -qq && touch $(APT_UPDATED); }
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
	fi
	[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund

# The wasm build (see TOOLCHAIN.md): Debian's cargo/rustc with -Zbuild-std, linked by rust-lld.
pkg:
	hash=$$(cat $(SOURCES) | sha256sum | cut -d' ' -f1)
	if [ "$$(cat pkg/.source-hash 2>/dev/null)" = "$$hash" ] && [ -f pkg/$(CRATE)_bg.wasm ] && [ -z "$${FORCE_PKG:-}" ]; then
	  echo "pkg/ is up to date with the Rust sources"; exit 0
	fi
	if rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown; then
	  cargo build --lib --profile wasm --target wasm32-unknown-unknown
	else
	  LLD=$$(ls $$HOME/.rustup/toolchains/*/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld | head -1)
	  PATH=/usr/bin:$$PATH RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
	  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=$$LLD \
	  RUSTFLAGS='--cfg getrandom_backend="wasm_js"' \
	    /usr/bin/cargo build --lib --profile wasm --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort
	fi
	rm -rf pkg.new && mkdir -p pkg.new
	wasm-bindgen --target web --no-typescript --out-dir pkg.new $(WASM_OUT)
	echo "$$hash" > pkg.new/.source-hash
	rm -rf pkg && mv pkg.new pkg
	echo "built pkg/ ($$(stat -c %s pkg/$(CRATE)_bg.wasm) bytes)"

size:
	raw=$$(stat -c %s pkg/$(CRATE)_bg.wasm); gz=$$(gzip -9 -c pkg/$(CRATE)_bg.wasm | wc -c)
	awk -v r=$$raw -v g=$$gz -v l=$(WASM_GZ_LIMIT) 'BEGIN { printf "pkg/$(CRATE)_bg.wasm: %.2f MB raw, %.2f MB gzipped (limit %.2f MB)\n", r/1048576, g/1048576, l/1048576 }'
	[ $$gz -le $(WASM_GZ_LIMIT) ] || { echo "the gzipped .wasm is over the limit"; exit 1; }

native-test:
	cargo test --release --locked

lab:
	cargo build --release --locked --bin lab

browser-test:
	node --test --test-concurrency=1 tests/browser/

# The attack figures of issue 4 (first 100 correctly classified test images of a data set);
# about an hour on 2 cores for MNIST. DATASET=cifar10 for CIFAR-10.
DATASET ?= mnist
results: lab
	mkdir -p results
	out=results/attacks-$(DATASET).jsonl; rm -f $$out
	for eps in 0.1 0.2 0.3; do
	  $(LAB) attack --dataset $(DATASET) --attack fgsm --epsilon $$eps --count 100 --json $$out
	  $(LAB) attack --dataset $(DATASET) --attack pgd --epsilon $$eps --count 100 --json $$out
	done
	$(LAB) attack --dataset $(DATASET) --attack cw --count 100 --json $$out
	$(LAB) attack --dataset $(DATASET) --attack cw --targeted --count 100 --json $$out
	$(LAB) report $$out > results/attacks-$(DATASET).md
	cat results/attacks-$(DATASET).md

# Case study 1 (issue 5): feature squeezing on the first 100 correctly classified test images.
# Calibrates the detector when needed, judges the bare model's C&W and FGSM examples by each
# defense (non-adaptive), then runs He et al.'s adaptive C&W against each defense and, for the
# comparison, the same budget on the bare model. MNIST about an hour on 2 cores, CIFAR-10 about
# 25 minutes. The defense must match the model: after retraining, run `lab defend` first.
# Each system is attacked on the first 100 test images that it classifies correctly and does
# not flag. The non-adaptive C&W (made on the bare model, judged by each defense) runs with a
# reduced budget: on MNIST the adaptive runs' (200 x 4 from c = 1, learning rate 0.05; C&W's
# 1000 x 9 took 32 minutes for the same verdicts), on CIFAR-10 200 x 5 from c = 0.01. FGSM's
# epsilon is Xu et al.'s for each data set.
ADAPTIVE_mnist := --steps 200 --binary-search-steps 4 --initial-const 1 --learning-rate 0.05 --restarts 2
ADAPTIVE_cifar10 := --steps 100 --binary-search-steps 4 --initial-const 1 --learning-rate 0.01 --restarts 2
NONADAPTIVE_mnist := --steps 200 --binary-search-steps 4 --initial-const 1 --learning-rate 0.05
NONADAPTIVE_cifar10 := --steps 200 --binary-search-steps 5 --initial-const 0.01
FGSM_EPSILON_mnist := 0.3
FGSM_EPSILON_cifar10 := 0.0156
squeeze-results: lab
	mkdir -p results
	[ -f models/$(DATASET)-squeeze.json ] || $(LAB) defend $(DATASET)
	out=results/squeeze-$(DATASET).jsonl; rm -f $$out
	lab="$(LAB) attack --dataset $(DATASET) --count 100 --json $$out"
	$$lab --attack cw $(NONADAPTIVE_$(DATASET)) --defense none,bit-depth,median,detector
	$$lab --attack fgsm --epsilon $(FGSM_EPSILON_$(DATASET)) --defense none,bit-depth,median,detector
	$$lab --attack cw $(ADAPTIVE_$(DATASET)) --defense none
	$$lab --attack cw $(ADAPTIVE_$(DATASET)) --defense bit-depth,median,detector --adaptive
	$(LAB) report $$out > results/squeeze-$(DATASET).md
	cat results/squeeze-$(DATASET).md

# Case study 2 (issue 13): Specialists+1 on the first 100 MNIST test images that the vote
# classifies correctly and does not flag, each with a random other class as its target (seeded by
# the test index). Non-adaptive: C&W made on the generalist alone (the bare model; 200 x 4 from
# c = 1), judged by the vote and its detector (detection rate). Adaptive: He et al.'s targeted
# attack (the C&W terms of every classifier that must vote for the target, confidence 10, plus the
# vote-confidence hinge), against Specialists+1 and, for the comparison, the same budget on the bare
# generalist. About 40 minutes on 2 idle cores (the 21-classifier step costs ~20 generalist steps).
SPECIALISTS_NONADAPTIVE := --steps 200 --binary-search-steps 4 --initial-const 1 --learning-rate 0.05
SPECIALISTS_ADAPTIVE := --steps 100 --binary-search-steps 3 --initial-const 3 --learning-rate 0.05 --confidence 10 --restarts 1
specialists-results: lab
	mkdir -p results
	out=results/specialists-mnist.jsonl; rm -f $$out
	lab="$(LAB) attack --dataset mnist --attack cw --targeted --count 100 --json $$out"
	$$lab $(SPECIALISTS_NONADAPTIVE) --defense none,specialists
	$$lab $(SPECIALISTS_ADAPTIVE) --defense none
	$$lab $(SPECIALISTS_ADAPTIVE) --defense specialists --adaptive
	$(LAB) report $$out > results/specialists-mnist.md
	cat results/specialists-mnist.md

# Case study 3 (issue 14): Gong, Metzen and Feinman detectors on CIFAR-10 (trained by
# `lab train detector <name>`, committed in models/), alone and as an OR-ensemble. Each system on
# the first DETECTOR_COUNT test images that it classifies correctly and does not flag.
# Non-adaptive: CW-L2 and FGSM made on the bare classifier, judged by each system (the records'
# detection rates). Adaptive: He et al.'s C&W through the whole system (the classifier's term plus
# each detector's hinge, the Feinman density through its kernel sum), the ensemble first, then
# each detector alone, and the same budget on the bare classifier for the comparison.
DETECTOR_COUNT ?= 100
DETECTORS_NONADAPTIVE := --steps 100 --binary-search-steps 3 --initial-const 0.1
DETECTORS_ADAPTIVE := --steps 100 --binary-search-steps 3 --initial-const 1 --restarts 1
DETECTOR_SYSTEMS := gong,metzen,feinman,gong+metzen+feinman
detector-results: lab
	mkdir -p results
	out=results/detectors-cifar10.jsonl; rm -f $$out
	lab="$(LAB) attack --dataset cifar10 --count $(DETECTOR_COUNT) --json $$out"
	$$lab --attack cw $(DETECTORS_NONADAPTIVE) --defense none,$(DETECTOR_SYSTEMS)
	$$lab --attack fgsm --epsilon 0.0156 --defense none,$(DETECTOR_SYSTEMS)
	$$lab --attack cw $(DETECTORS_ADAPTIVE) --defense none
	for system in gong+metzen+feinman gong metzen feinman; do
	  $$lab --attack cw $(DETECTORS_ADAPTIVE) --defense $$system --adaptive
	done
	$(LAB) report $$out > results/detectors-cifar10.md
	cat results/detectors-cifar10.md

# The benchmark of issue 12 (tests/bench/): the C&W attack step of the lab (pkg/ as it is, on WebGPU and
# on the CPU fallback) against TensorFlow.js 4.22 (webgpu, webgl, wasm, cpu) in headless Chromium, and
# natively against PyTorch on the CPU (PyPI's torch, installed into tests/bench/.venv: a few GB, as
# PyPI's Linux wheel brings its CUDA libraries) and `lab bench --attack-step` where the built `lab` has
# it; writes BENCHMARKS.md. About 15 minutes on 2 cores; knobs (BENCH_ROUNDS, ...) in tests/bench/run.mjs.
BENCH_VENV := tests/bench/.venv
bench: setup-browser
	[ -d node_modules/@tensorflow/tfjs ] || npm ci --no-audit --no-fund
	[ -x $(BENCH_VENV)/bin/python ] || python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -c 'import torch, numpy' 2>/dev/null || $(BENCH_VENV)/bin/pip install -q torch numpy
	$(BENCH_VENV)/bin/python tests/bench/torch_step.py > tests/bench/torch.json
	native=
	if [ -x $(LAB) ] && $(LAB) bench --help 2>&1 | grep -q -- '--attack-step'; then
	  $(LAB) bench --attack-step --json > tests/bench/native.json && native=tests/bench/native.json
	fi
	BENCH_TORCH_JSON=tests/bench/torch.json BENCH_NATIVE_JSON="$$native" BENCH_COMMAND="make bench" node tests/bench/run.mjs

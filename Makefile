# Cleanroom build entry points. `make demo` and `make test` are all a fresh
# machine with Go and a C compiler needs.

SHELL := /bin/bash
export GOFLAGS := -tags=duckdb_arrow
GO ?= go
BIN := bin
FUZZTIME ?= 30s
TESTTIMEOUT ?= 45m

.PHONY: all build test test-deps demo bench bench-upload bench-micro bench-models soak fuzz lint clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...
	$(GO) build -o $(BIN)/ad-attribution-gen ./examples/ad-attribution/gen
	$(GO) build -o $(BIN)/clinical-cohort-gen ./examples/clinical-cohort/gen
	$(GO) build -o $(BIN)/ad-attribution-bench ./examples/ad-attribution/bench
	GOOS=wasip1 GOARCH=wasm GOFLAGS= $(GO) build -trimpath -buildmode=c-shared -o $(BIN)/risk_band.wasm ./examples/clinical-cohort/riskmodel/wasm

# The whole test suite: unit, fuzz seed corpora, CLI scripts, end to end.
test: test-deps
	$(GO) test -timeout $(TESTTIMEOUT) ./...

# What the tests need beyond Go and a C compiler: headless Chromium (Debian's
# chromium package), in which the audit web view is tested. Installed with
# apt-get when missing (as root, or with sudo); CLEANROOM_SKIP_BROWSER=1 skips
# the browser checks where it cannot be installed.
CHROMIUM ?= /usr/bin/chromium
test-deps:
	@if [ -x "$(CHROMIUM)" ] || [ "$$CLEANROOM_SKIP_BROWSER" = 1 ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "make test-deps: $(CHROMIUM) is missing and apt-get is not available: install Chromium there, or set CLEANROOM_SKIP_BROWSER=1 to skip the browser test" >&2; exit 0; fi; \
	sudo=; if [ "$$(id -u)" != 0 ]; then \
	  if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else \
	    echo "make test-deps: $(CHROMIUM) is missing; installing it needs root (apt-get install chromium), or set CLEANROOM_SKIP_BROWSER=1" >&2; exit 0; fi; fi; \
	echo "make test-deps: installing chromium (headless browser for the audit web view test)"; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium || \
	echo "make test-deps: installing chromium failed; the browser test will say so (CLEANROOM_SKIP_BROWSER=1 skips it)" >&2

# A whole multi-party scenario on the embedded defaults.
demo: build
	./examples/demo.sh

# The whole-system comparison of SPEC §12: a clean-room run (decrypt, load,
# query, policy, encrypt, sign, log) against plain DuckDB running the same
# SQL on the same data as Parquet, at 1M and 10M rows of the ad-attribution
# scenario, and larger than memory (BENCH_SPILL_ROWS: both sides get a query
# memory limit of a quarter of the datasets and spill): time, ratio, peak
# memory of both sides and their ratio, bytes spilled; then the whole
# `cleanroom run` command against a plain DuckDB process at
# BENCH_COMMAND_ROWS (docs/performance.md). BENCH_ROWS, BENCH_SPILL_ROWS,
# BENCH_COMMAND_ROWS (empty: none), BENCH_REPEAT and BENCH_THREADS (both
# sides' query threads; empty: all cores) adjust it.
BENCH_ROWS ?= 1000000,10000000
BENCH_SPILL_ROWS ?= 10000000
BENCH_COMMAND_ROWS ?= 200000
BENCH_REPEAT ?= 5
BENCH_OUTPUT ?= aggregate
BENCH_THREADS ?=
bench: build
	./$(BIN)/ad-attribution-bench -rows '$(BENCH_ROWS)' -spill-rows '$(BENCH_SPILL_ROWS)' -command-rows '$(BENCH_COMMAND_ROWS)' -repeat $(BENCH_REPEAT) -output $(BENCH_OUTPUT) $(if $(BENCH_THREADS),-threads $(BENCH_THREADS))

# The provider's side: `cleanroom dataset upload` of a Parquet, an Arrow IPC and a CSV
# file of BENCH_UPLOAD_MB MB each (read, check, encrypt, send to a
# coordinator on the same machine): MB/s of input and the provider's peak
# memory (docs/performance.md).
BENCH_UPLOAD_MB ?= 1000
bench-upload: build
	./$(BIN)/ad-attribution-bench -mode upload -upload-mb $(BENCH_UPLOAD_MB) $(if $(BENCH_THREADS),-threads $(BENCH_THREADS))

# The example's WebAssembly risk model against native Go and the query
# without it, at BENCH_MODEL_ROWS rows (docs/models.md §8).
BENCH_MODEL_ROWS ?= 10000000
bench-models:
	CLEANROOM_BENCH_MODEL_ROWS=$(BENCH_MODEL_ROWS) $(GO) test -run '^$$' -bench BenchmarkRiskModel -benchtime 2x -timeout 60m ./coordinator/internal/engine

# A load run against a real coordinator process: concurrent parties for
# SOAK_DURATION, then every acknowledged item and result is checked;
# prints throughput, p50/p99 latency per operation and the daemon's peak
# memory. (A short version runs in make test.)
SOAK_DURATION ?= 10m
SOAK_WORKERS ?= 6
soak:
	CLEANROOM_SOAK_DURATION=$(SOAK_DURATION) CLEANROOM_SOAK_WORKERS=$(SOAK_WORKERS) \
	  $(GO) test -count=1 -timeout 0 -run '^TestSoak$$' -v ./coordinator | grep -v '^I[0-9]'

# Micro-benchmarks of every package (go test -bench).
bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Every fuzz target for FUZZTIME each (make fuzz FUZZTIME=5m). Minimising
# a new input stops after FUZZMINIMIZETIME, so large seeds (bundles,
# envelopes) do not stall a target; FUZZFLAGS adds flags (e.g. -parallel 1).
FUZZMINIMIZETIME ?= 5s
FUZZFLAGS ?=
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$target ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) $(FUZZFLAGS) $$pkg; \
	  done; \
	done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf $(BIN)

# Reproducible release build: dist/cleanroom, dist/cleanroomd (linux/amd64)
# and dist/SHA256SUMS; identical bytes from identical source and toolchain
# (docs/deploy-sev-snp.md). VERSION defaults to git describe.
# release-check builds three times (two build caches, two source paths) and
# compares; it takes minutes and is not part of `make test`.
DIST ?= dist

.PHONY: release release-check

release:
	GO='$(GO)' DIST='$(DIST)' ./scripts/release.sh

release-check:
	GO='$(GO)' ./scripts/release-check.sh

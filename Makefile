# Cleanroom build entry points. `make demo` and `make test` are all a fresh
# machine with Go and a C compiler needs.

SHELL := /bin/bash
export GOFLAGS := -tags=duckdb_arrow
GO ?= go
BIN := bin
FUZZTIME ?= 30s
TESTTIMEOUT ?= 45m

.PHONY: all build test demo bench fuzz lint clean

all: build

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...
	$(GO) build -o $(BIN)/ad-attribution-gen ./examples/ad-attribution/gen
	$(GO) build -o $(BIN)/clinical-cohort-gen ./examples/clinical-cohort/gen

# The whole test suite: unit, fuzz seed corpora, CLI scripts, end to end.
test:
	$(GO) test -timeout $(TESTTIMEOUT) ./...

# A whole multi-party scenario on the embedded defaults.
demo: build
	./examples/demo.sh

# Micro-benchmarks of every package.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Every fuzz target for FUZZTIME each (make fuzz FUZZTIME=5m).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$target ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf $(BIN)

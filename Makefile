# wsd — see README.md. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO       ?= go
LISTEN   ?= 127.0.0.1:8080
ARGS     ?=
FUZZTIME ?= 60s
BENCH    ?= .
BENCHPKG ?= ./codec/ ./poller/ ./server/
# Per test binary. go test's own default (10m) would let one hung package
# eat most of make test's 15-minute budget; this fails it with a stack dump.
TEST_TIMEOUT ?= 5m

.PHONY: help build run test test-deps vet test-unit test-interop fuzz-short fuzz bench lint clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

build: ## compile every package and write bin/wsd
	$(GO) build ./...
	$(GO) build -o bin/wsd ./cmd/wsd

run: ## run the daemon on $(LISTEN) (extra flags: ARGS="--deflate=false")
	$(GO) run ./cmd/wsd --listen $(LISTEN) $(ARGS)

test: ## everything CI runs: deps, vet, race tests, interop, 10s fuzz per target (< 15 min)
	@scripts/test.sh

test-deps: ## install python3-websockets, node/npm and npm ws if missing (never fails)
	@scripts/install-test-deps.sh

vet: ## go vet both modules
	$(GO) vet ./...
	cd test/interop && $(GO) vet ./...

test-unit: ## go test -race in the main module
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

test-interop: ## third-party clients (gorilla, coder, python websockets, node ws) against the wsd binary
	@TEST_TIMEOUT=$(TEST_TIMEOUT) scripts/interop.sh

fuzz-short: ## every fuzz target for 10s
	FUZZTIME=10s scripts/fuzz.sh

fuzz: ## every fuzz target for $(FUZZTIME) (default 60s)
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

bench: ## micro-benchmarks of codec, poller and server
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem $(BENCHPKG)

lint: ## gofmt -l must print nothing, then go vet
	@out=$$(gofmt -l .); \
	if [[ -n "$$out" ]]; then echo "gofmt: these files need gofmt -w:"; echo "$$out"; exit 1; fi
	@$(MAKE) --no-print-directory vet

clean: ## remove bin/ and test/interop/node/node_modules
	rm -rf bin test/interop/node/node_modules

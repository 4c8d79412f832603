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

# go test -json logs of the last runs (make test starts with none), and the
# filter that prints them as go test would plus every skipped test.
TEST_LOGS ?= $(CURDIR)/bin/test-logs
REPORT    := $(CURDIR)/bin/testreport

.PHONY: help build run test test-deps vet test-unit test-allocs test-soak soak soak-memory soak-abuse test-interop test-browser test-skips testreport fuzz-short fuzz bench lint clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

build: ## compile every package and write bin/wsd
	$(GO) build ./...
	$(GO) build -o bin/wsd ./cmd/wsd

run: ## run the daemon on $(LISTEN) (extra flags: ARGS="--deflate=false")
	$(GO) run ./cmd/wsd --listen $(LISTEN) --demo $(ARGS)

test: ## everything CI runs: deps, vet, race tests, allocation checks, interop, browser, 10s fuzz per target; lists skipped tests (< 15 min)
	@scripts/test.sh

test-deps: ## install nginx-light, chromium, python3-websockets, node/npm and npm ws if missing (under CI=true: fails if it cannot)
	@scripts/install-test-deps.sh

vet: ## go vet both modules
	$(GO) vet ./...
	cd test/interop && $(GO) vet ./...

testreport:
	@mkdir -p $(TEST_LOGS)
	@$(GO) build -o $(REPORT) ./scripts/testreport

test-unit: testreport ## go test -race in the main module
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) -json ./... | $(REPORT) filter $(TEST_LOGS)/unit.json

test-allocs: testreport ## allocation checks (//go:build !race files) without -race
	@GO=$(GO) TEST_TIMEOUT=$(TEST_TIMEOUT) TEST_LOGS=$(TEST_LOGS) REPORT=$(REPORT) scripts/allocs.sh

# Churn soak and slow consumers (test/soak, docs/bench/soak.md). SOAK is the
# churn's length, SOAK_RATE its connects+disconnects per second; timelines go
# to $(SOAK_OUT) (WSD_ARTIFACTS/soak).
SOAK      ?= 10m
SOAK_RATE ?= 1000
SOAK_OUT  ?= $(CURDIR)/bin/soak-artifacts

test-soak: testreport ## make test's soak step: 60 s churn soak and 100 slow + 1,000 healthy subscribers, wsd as a process (no -race: the load needs an uninstrumented driver; test-unit runs the short -race window)
	SOAK=60s WSD_ARTIFACTS=$(SOAK_OUT) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -json ./test/soak/ | $(REPORT) filter $(TEST_LOGS)/soak.json

soak: ## churn soak for $(SOAK) at $(SOAK_RATE)/s, slow consumers at full size (1,000 slow + 10,000 healthy), then a 30 s window with wsd and the driver under -race
	SOAK=$(SOAK) SOAK_RATE=$(SOAK_RATE) WSD_SLOW_FULL=1 WSD_ARTIFACTS=$(SOAK_OUT) \
		$(GO) test -count=1 -timeout 2h -v ./test/soak/
	SOAK=30s WSD_ARTIFACTS=$(SOAK_OUT)/race $(GO) test -race -count=1 -timeout 30m -v -run TestChurnSoak ./test/soak/

soak-memory: ## the memory-budget and worker-inflation attacks at full size (2,000 offenders trickling, then flooding; 20 × 16 MiB compressed), p99s and wsd's RSS logged
	WSD_MEMORY_SOAK=1 $(GO) test -count=1 -timeout 10m -v -run 'TestMemoryBudget|TestOffloadKeepsLoopServing' ./server/
	WSD_MEMORY_SOAK=1 WSD_MEMORY_FLOOD=1 $(GO) test -count=1 -timeout 10m -v -run 'TestMemoryBudgetShedsInboundOffenders' ./server/
	WSD_MEMORY_SOAK=1 $(GO) test -count=1 -timeout 10m -v -run 'TestMemoryBudgetBoundsProcessRSS' ./cmd/wsd/

test-interop: testreport ## third-party clients (gorilla, coder, python websockets, node ws) against the wsd binary
	@GO=$(GO) TEST_TIMEOUT=$(TEST_TIMEOUT) TEST_LOGS=$(TEST_LOGS) REPORT=$(REPORT) scripts/interop.sh

test-browser: testreport ## the demo page in headless Chromium (nested module test/browser, chromedp)
	cd test/browser && $(GO) vet ./... && \
		$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -json ./... | $(REPORT) filter $(TEST_LOGS)/browser.json

test-skips: testreport ## list the tests that the runs logged in bin/test-logs skipped (under CI=true: fails if any)
	@$(REPORT) summary $$(case "$${CI:-}" in 1|t|T|true|TRUE|True) echo -ci;; esac) $(TEST_LOGS)/*.json

fuzz-short: ## every fuzz target for 10s
	FUZZTIME=10s scripts/fuzz.sh

fuzz: ## every fuzz target for $(FUZZTIME) (default 60s)
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

soak-abuse: ## the abuse tests at full size (WSD_ABUSE_FULL=1: 9,000 trickling handshakes, 500 bad-JSON flooders, ...; docs/bench/abuse.md)
	WSD_ABUSE_FULL=1 $(GO) test -count=1 -timeout 20m -run 'Abuse' -v ./server/ ./wsproto/

bench: ## micro-benchmarks of codec, poller and server
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem $(BENCHPKG)

lint: ## gofmt -l must print nothing, then go vet
	@out=$$(gofmt -l .); \
	if [[ -n "$$out" ]]; then echo "gofmt: these files need gofmt -w:"; echo "$$out"; exit 1; fi
	@$(MAKE) --no-print-directory vet

clean: ## remove bin/ and test/interop/node/node_modules
	rm -rf bin test/interop/node/node_modules

# ---------------------------------------------------------------------------
# Load generator (wsbench) and side-by-side runs against peer servers.
# Owned by the bench/ work (issue 3); everything below is additive.
# Knobs: DURATION (measured window per step), CONNS (bench-idle/bench-echo),
# IDLE_CONNS / ECHO_CONNS / BCAST_CONNS / WS_BCAST_CONNS / CONNECT_CONNS
# (bench-peers), PEERS (which peers), STEPS (only steps starting with these),
# BENCH_OUT, PUBLISH (bench-broadcast-ws: ws or http).
# ---------------------------------------------------------------------------
DURATION      ?= 8s
CONNS         ?= 10000
IDLE_CONNS    ?= 10000,19000
ECHO_CONNS    ?= 1000,10000
BCAST_CONNS   ?= 10000
WS_BCAST_CONNS ?= 10000
CONNECT_CONNS ?= 10000
PEERS         ?= gorilla gws nbio gobwas
STEPS         ?=
BENCH_OUT     ?= docs/bench
BENCH_LISTEN  ?= 127.0.0.1:18765
PUBLISH       ?= ws

.PHONY: wsbench bench-peers-build bench-peers bench-idle bench-echo bench-broadcast bench-broadcast-ws bench-cluster bench-sweep

wsbench: ## build bin/wsbench (the load generator)
	$(GO) build -o bin/wsbench ./cmd/wsbench

bench-peers-build: ## build bin/wsd, bin/wsbench and the peer servers in bin/peers/
	$(GO) build -o bin/wsd ./cmd/wsd
	$(GO) build -o bin/wsbench ./cmd/wsbench
	cd bench/peers && for p in $(PEERS); do $(GO) build -o ../../bin/peers/$$p ./cmd/$$p; done

bench-peers: bench-peers-build ## wsd vs gorilla, gws, nbio, gobwas: writes $(BENCH_OUT)/results.{md,json,html} (~7 min)
	bin/wsbench suite --out $(BENCH_OUT) --listen $(BENCH_LISTEN) --duration $(DURATION) \
		--idle-conns $(IDLE_CONNS) --echo-conns $(ECHO_CONNS) --broadcast-conns $(BCAST_CONNS) \
		--ws-broadcast-conns $(WS_BCAST_CONNS) --connect-conns $(CONNECT_CONNS) --steps '$(STEPS)' \
		--server wsd=bin/wsd $(foreach p,$(PEERS),--server $(p)=bin/peers/$(p))

bench-idle: bench-peers-build ## idle RSS per connection of wsd with $(CONNS) connections
	@bin/wsd --listen $(BENCH_LISTEN) --log-level warn & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null' EXIT; sleep 0.5; \
	procs=$$(( ($(CONNS) + 9999) / 10000 )); \
	bin/wsbench idle --url ws://$(BENCH_LISTEN)/echo --conns $(CONNS) --procs $$procs --duration $(DURATION) \
		--source-ips 127.0.0.2-127.0.0.60 --server-pid $$pid --json $(BENCH_OUT)/idle.json --html $(BENCH_OUT)/idle.html

bench-echo: bench-peers-build ## closed-loop 1 KiB echo against wsd with $(CONNS) connections
	@bin/wsd --listen $(BENCH_LISTEN) --log-level warn & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null' EXIT; sleep 0.5; \
	procs=$$(( ($(CONNS) + 9999) / 10000 )); \
	bin/wsbench echo --url ws://$(BENCH_LISTEN)/echo --conns $(CONNS) --procs $$procs --duration $(DURATION) \
		--source-ips 127.0.0.2-127.0.0.60 --server-pid $$pid --json $(BENCH_OUT)/echo.json --html $(BENCH_OUT)/echo.html

bench-broadcast: bench-peers-build ## broadcast to $(CONNS) subscribers of wsd
	@bin/wsd --listen $(BENCH_LISTEN) --log-level warn & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null' EXIT; sleep 0.5; \
	procs=$$(( ($(CONNS) + 9999) / 10000 )); \
	bin/wsbench broadcast --url ws://$(BENCH_LISTEN)/broadcast --conns $(CONNS) --procs $$procs --text --pipeline 8 \
		--duration $(DURATION) --source-ips 127.0.0.2-127.0.0.60 --server-pid $$pid \
		--json $(BENCH_OUT)/broadcast.json --html $(BENCH_OUT)/broadcast.html

bench-broadcast-ws: bench-peers-build ## broadcast to $(CONNS) subscribers of one channel on wsd's /ws, published over $(PUBLISH) (ws or http)
	@key=wsbench-$$$$; \
	bin/wsd --listen $(BENCH_LISTEN) --log-level warn --rate-limit -1 --api-key $$key & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null' EXIT; sleep 0.5; \
	procs=$$(( ($(CONNS) + 9999) / 10000 )); \
	if [ "$(PUBLISH)" = http ]; then pub="--publish http --api-key $$key"; else pub="--publish ws"; fi; \
	bin/wsbench broadcast --mode ws --url ws://$(BENCH_LISTEN)/ws --channel bench $$pub --conns $(CONNS) --procs $$procs --pipeline 8 \
		--duration $(DURATION) --source-ips 127.0.0.2-127.0.0.60 --server-pid $$pid \
		--json $(BENCH_OUT)/broadcast-ws-$(PUBLISH).json --html $(BENCH_OUT)/broadcast-ws-$(PUBLISH).html

# Cross-node broadcast (docs/bench/cluster-broadcast.md). Knobs: CLUSTER_CASE
# (cluster, nats or memory), CLUSTER_CONNS, CLUSTER_RATE (0 = closed loop,
# --pipeline 8), DURATION. Needs bin/nats-server (make test-deps).
CLUSTER_CASE  ?= cluster
CLUSTER_CONNS ?= 18000
CLUSTER_RATE  ?= 0

bench-cluster: ## broadcast: 2 wsd on one nats-server, $(CLUSTER_CONNS) subscribers round robin, publisher on A (≈ 30 s; stops everything it starts)
	$(GO) build -o bin/wsd ./cmd/wsd
	$(GO) build -o bin/wsbench ./cmd/wsbench
	CASE=$(CLUSTER_CASE) CONNS=$(CLUSTER_CONNS) RATE=$(CLUSTER_RATE) DURATION=$(DURATION) \
		OUT=$(BENCH_OUT)/cluster-$(CLUSTER_CASE).json scripts/bench-cluster.sh

# Broadcast rate sweep (docs/bench/broadcast-sweep.md): the highest offered
# publish rate each server sustains with p99 <= SWEEP_MAX_P99 and nothing
# lost, at SWEEP_CONNS subscribers (10k: one client process, 18k: two), 64 B.
# Knobs: SWEEP_SERVERS, SWEEP_CONNS, SWEEP_RATES, SWEEP_STEP, SWEEP_MAX_P99.
SWEEP_SERVERS ?= wsd gws nbio
SWEEP_CONNS   ?= 10000 18000
SWEEP_RATES   ?= 2:10:2,15:40:5,50
SWEEP_STEP    ?= 5s
SWEEP_MAX_P99 ?= 100ms

bench-sweep: ## broadcast --rates sweep of wsd, gws and nbio at $(SWEEP_CONNS) subscribers: docs/bench/sweep/*.json and the tables (~7 min)
	$(MAKE) --no-print-directory bench-peers-build PEERS='$(filter-out wsd,$(SWEEP_SERVERS))'
	for n in $(SWEEP_CONNS); do \
		SERVERS='$(SWEEP_SERVERS)' CONNS=$$n RATES='$(SWEEP_RATES)' STEP=$(SWEEP_STEP) MAX_P99=$(SWEEP_MAX_P99) \
			OUT=$(BENCH_OUT)/sweep scripts/bench-sweep.sh; \
	done

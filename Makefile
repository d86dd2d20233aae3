# State Change Journal — build, run, test, prove.
GO        ?= go
PKGS      := ./...
BIN       := bin/journalctl
STATICCHECK_VERSION := v0.8.2
NPM       ?= npm
# The Node packages (SPEC section 9), each with its own package.json and lock file.
NODE_PKGS := clients/node bridges/socketio

.PHONY: all build run test test-go test-node node-deps bench bench-smoke bench-bridge bench-go bench-queries crash fuzz-smoke check fmt vet staticcheck clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/journalctl

## run: build, then the journal server in the foreground on the embedded defaults (data in
## .tmp/state-journal, 127.0.0.1:7766); ARGS adds flags, e.g. make run ARGS="--listen 127.0.0.1:0".
## exec replaces the recipe's shell, so the server is make's own child: SIGTERM or SIGINT to make
## reaches it (make forwards SIGTERM to its children) and it drains; `go run` would leave it orphaned.
ARGS ?=
run: build
	exec ./$(BIN) serve $(ARGS)

## test: every test: the Go tests with the race detector (includes short crash and fault
## campaigns), then both Node packages' tests against the real server
test: test-go test-node

test-go:
	$(GO) test -race -timeout 4m $(PKGS)

## node-deps: install each Node package's pinned dependencies from its lock file (npm ci)
## when its node_modules is missing
node-deps:
	@for p in $(NODE_PKGS); do \
	  if [ ! -d $$p/node_modules ]; then echo "npm ci in $$p"; (cd $$p && $(NPM) ci --no-audit --no-fund) || exit 1; fi; \
	done

## test-node: node --test in each Node package, against the journalctl that `build` made
test-node: build node-deps
	@for p in $(NODE_PKGS); do \
	  echo "npm test in $$p"; (cd $$p && JOURNALCTL_BIN=$(CURDIR)/$(BIN) $(NPM) test) || exit 1; \
	done

## bench: the write-path table against baselines, compaction, the query table, the coverage watcher's cost, then the NATS relay's throughput, lag and cost to the writers (several minutes)
bench: bench-bridge
	$(GO) run ./bench/cmd/loadgen
	$(GO) run ./bench/cmd/compactbench
	$(GO) run ./bench/cmd/querybench
	$(GO) run ./bench/cmd/coveragebench
	$(GO) run ./bench/cmd/relaybench

## bench-bridge: the Socket.IO bridge's fan-out: 1,000 admin clients under a 10,000-heartbeat storm
bench-bridge: build node-deps
	cd bridges/socketio && JOURNALCTL_BIN=$(CURDIR)/$(BIN) $(NPM) run bench

## bench-smoke: every benchmark scenario for about a second, so benchmark code never rots
bench-smoke: build node-deps
	$(GO) run ./bench/cmd/loadgen -smoke
	$(GO) run ./bench/cmd/compactbench -smoke
	$(GO) run ./bench/cmd/querybench -smoke
	$(GO) run ./bench/cmd/coveragebench -smoke
	$(GO) run ./bench/cmd/relaybench -smoke
	cd bridges/socketio && JOURNALCTL_BIN=$(CURDIR)/$(BIN) $(NPM) run bench:smoke

## bench-queries: state-engine queries on 1M-10M-record journals (~2 min, <= 360 MiB temp disk)
bench-queries:
	$(GO) run ./bench/cmd/querybench

## bench-go: the Go benchmarks (benchstat-friendly)
bench-go:
	$(GO) test -run XXX -bench . -benchmem -count 1 ./...

## crash: the long crash campaigns (hundreds of SIGKILLs of a writer, of a loaded serve and of the NATS relay) and the full damage campaign
crash:
	CRASH_KILLS=$(or $(CRASH_KILLS),300) $(GO) test -run 'Crash' -timeout 60m -v ./engine/ ./cmd/journalctl/
	RELAY_KILLS=$(or $(RELAY_KILLS),100) $(GO) test -run 'Crash' -timeout 30m -v ./relay/
	SJ_CAMPAIGN_FULL=1 $(GO) test -run 'DamageCampaign' -timeout 30m -v ./engine/

## fuzz-smoke: each native fuzz target for a few seconds
fuzz-smoke:
	./.ci/fuzz-smoke.sh 5s

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

## check: formatting, vet, staticcheck and the race tests
check: fmt vet staticcheck test

clean:
	rm -rf bin

# nodepatch: `make demo` runs a live rolling reboot on a local control plane;
# `make test` runs every test, end-to-end ones included. Both set up what a fresh
# machine lacks.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN     := _output/bin
LDFLAGS := -s -w -X github.com/nodepatch/nodepatch/pkg/version.Version=$(VERSION)

.PHONY: all build demo test unit e2e realnode chaos model bench bench-scale fuzz lint tools deps image manifests clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/nodepatch ./cmd/nodepatch

tools:
	hack/build-tools.sh

deps:
	hack/install-deps.sh

demo: tools
	$(GO) run ./hack/demo

# Every test: unit, host (real apt, dnf, dbus, systemd in nspawn), chart, alerts,
# and end-to-end on a real API server. Tests build or install what they need.
test: deps tools lint
	$(GO) test -count=1 -timeout 45m ./...

unit:
	$(GO) test -count=1 ./pkg/...

e2e: tools
	$(GO) test -count=1 -timeout 30m -v ./test/e2e/...

# The chart on a real kubelet in a systemd-nspawn node (also part of `make test`);
# the first run builds the node root (hack/rootfs.sh node).
realnode: deps tools
	$(GO) test -count=1 -timeout 20m -v ./test/realnode/...

# Seeded chaos runs (test/chaos): SEEDS=N runs seeds 1..N; SEED=S replays one.
SEEDS ?= 20
chaos: tools
	$(GO) test -count=1 -timeout 0 -v -run '^TestChaos$$' ./test/chaos -args $(if $(SEED),-seed=$(SEED),-seeds=$(SEEDS))

# The exhaustive interleaving check (test/model) with larger bounds than make test's:
# FAULTS faults of every kind per path on three nodes (FAULTS=1: about 1.2 million
# states in 18 minutes on 2 cores; each further fault multiplies that many times), any
# two faults on two nodes, the node-conflict and lock-TTL searches, and the rollout
# controller's longer searches (a controller crash on three nodes; two controllers that
# both lead, one of them crashing, on two nodes).
FAULTS ?= 1
model:
	NODEPATCH_MODEL_LONG=1 NODEPATCH_MODEL_FAULTS=$(FAULTS) $(GO) test -count=1 -timeout 0 -v ./test/model/

# Benchmarks: the 12-node rollouts (ratio to the ideal time), the binary's size and an idle
# agent's memory, and the hot paths.
bench: tools
	$(GO) test -run '^$$' -bench '^Benchmark(Rollout|AgentFootprint)' -benchtime 1x -timeout 30m ./test/bench/...
	$(GO) test -run '^$$' -bench . ./pkg/...

# Scale benchmarks (figures next to their targets, nothing asserted): rollouts of 100,
# 300 and 1,000 in-process agents under a real `nodepatch controller` at
# --max-unavailable=10% with 5 s reboots, then the controller alone at 5,000 nodes.
# SCALE picks some (a regular expression of names, e.g. SCALE='Scale100|Scale300'); the
# whole set takes about an hour on 2 cores.
SCALE ?= Scale[0-9]+|ControllerAlone[0-9]+
bench-scale: tools
	$(GO) test -run '^$$' -bench '^Benchmark($(SCALE))$$' -benchtime 1x -timeout 4h ./test/bench/

# Short coverage-guided runs of every fuzz target.
fuzz:
	hack/fuzz.sh 20s

lint: tools
	@test -z "$$(gofmt -l cmd pkg test hack)" || (gofmt -l cmd pkg test hack; echo "gofmt needed"; exit 1)
	$(GO) vet ./...
	$(BIN)/staticcheck ./...

image:
	@command -v docker >/dev/null && docker info >/dev/null 2>&1 || { echo "make image needs a running container engine"; exit 1; }
	docker build --build-arg VERSION=$(VERSION) -t nodepatch:$(VERSION) .

manifests: tools
	manifests/render.sh

clean:
	rm -rf _output

# steadfast: make help lists the targets.

GO            ?= go
PKGS          ?= ./...
FUZZTIME      ?= 10s
# A bounded minimisation, so that a slow one cannot eat the fuzz time.
FUZZFLAGS     ?= -fuzzminimizetime=10x
BENCHTIME     ?= 1s
GOLANGCI_VERSION ?= v2.15.0
GOBIN         ?= $(shell $(GO) env GOPATH)/bin
GOLANGCI      ?= $(GOBIN)/golangci-lint

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# Modules of their own, which go test ./... does not enter: the metrics
# adapter and the example keep OpenTelemetry and Prometheus out of the
# library's module.
METRICS       := metrics
EXAMPLE       := examples/echo-server

.PHONY: run
run: ## run the example server (embedded Redis unless REDIS_URL or REDISHOST/REDISPORT is set); metrics at /metrics
	cd $(EXAMPLE) && $(GO) run .

# internal/asynqtest is a module of its own, so that asynq stays out of
# what library users compile; go test ./... does not enter it.
ASYNQTEST     := internal/asynqtest

.PHONY: test
test: vet ## vet, then every test with the race detector (real redis-server and Celery tests skip without them)
	$(GO) test -race -count=1 -timeout 10m $(PKGS)
	cd $(METRICS) && $(GO) test -race -count=1 -timeout 5m ./...
	cd $(EXAMPLE) && $(GO) test -race -count=1 -timeout 10m ./...
	cd $(ASYNQTEST) && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 5m ./...

.PHONY: race
race: ## the tests with the race detector, several times, to shake out flakes
	$(GO) test -race -count=3 -timeout 20m $(PKGS)

.PHONY: vet
vet: ## go vet
	$(GO) vet $(PKGS)
	cd $(METRICS) && $(GO) vet ./...
	cd $(EXAMPLE) && $(GO) vet ./...

.PHONY: lint
lint: $(GOLANGCI) ## golangci-lint (errcheck, govet, staticcheck, revive, goimports, ...)
	$(GOLANGCI) run $(PKGS)
	cd $(METRICS) && $(GOLANGCI) run ./...
	cd $(EXAMPLE) && $(GOLANGCI) run ./...
	cd $(ASYNQTEST) && $(GOLANGCI) run ./...

$(GOLANGCI):
	GOFLAGS= $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)

.PHONY: fuzz
fuzz: ## run every Fuzz target for FUZZTIME each (default 10s)
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f"; \
			$(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $(FUZZFLAGS) $$pkg; \
		done; \
	done

.PHONY: bench
bench: ## benchmarks with allocations (real redis-server ones skip without it)
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) $(PKGS)
	cd $(METRICS) && $(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) ./...

BENCHFLAGS    ?=

.PHONY: bench-compare
bench-compare: ## side by side: no cache, the thinnest Redis cache, steadfast, near cache, topologies (needs redis-server, redis-sentinel; a few minutes)
	$(GO) run ./bench $(BENCHFLAGS)

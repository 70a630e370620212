# cairn: `make` lists the targets. CI runs `make test` (see .ci/run).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO       ?= go
FUZZTIME ?= 30s
E2E_TIMEOUT ?= 20m

# Tolerates a checkout without git (a tarball): version dev, commit unknown.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# Unit and integration packages: everything but the end-to-end tests and the
# benchmark harnesses, which have their own targets.
UNIT_PKGS = $(shell $(GO) list ./... | grep -v -e '/e2e' -e '/benchmarks')
BENCH_PKGS = $(shell $(GO) list ./benchmarks/... 2>/dev/null)

.PHONY: help build test unit bench-smoke e2e lint fmt-check vet fuzz bench bench-harness bench-go

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/cairn, stamped with git describe / rev-parse
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/cairn ./cmd/cairn

test: fmt-check vet unit bench-smoke ## what CI runs: gofmt, vet, unit tests with -race, a benchmark smoke pass, then e2e
	$(MAKE) e2e

unit: ## go test -race on every package but e2e and benchmarks
	$(GO) test -race $(UNIT_PKGS)

bench-smoke: ## run each Go benchmark once (-benchtime=1x), the big-store ones on 20,000 blobs, then cairn-bench --smoke
	@if [ -z "$(BENCH_PKGS)" ]; then echo "no benchmark packages yet"; else \
		CAIRN_BENCH_MILLION=20000 $(GO) test -run='^$$' -bench=. -benchtime=1x $(BENCH_PKGS); fi
	$(GO) test ./benchmarks/cmd/...
	@if command -v docker-registry >/dev/null || [ "$${CI:-}" = true ]; then \
		$(GO) run ./benchmarks/cmd/cairn-bench --smoke $(SMOKE_SCENARIOS); \
	else echo "cairn-bench --smoke: skipped, docker-registry not installed (with CI=true this fails)"; fi

e2e: ## end-to-end tests: cairn between docker-registry and containerd / skopeo (needs root and the Debian packages)
	$(GO) test -race -p 1 -count=1 -v -timeout $(E2E_TIMEOUT) ./e2e/...

lint: fmt-check vet ## gofmt, go vet, and staticcheck when installed
	@if command -v staticcheck >/dev/null; then staticcheck ./...; else echo "staticcheck not installed: skipped"; fi

fmt-check: ## fail on files gofmt would change
	@files=$$(gofmt -l .); if [ -n "$$files" ]; then echo "gofmt needed:"; echo "$$files"; exit 1; fi

vet: ## go vet ./...
	$(GO) vet ./...

fuzz: ## run every fuzz target for FUZZTIME each (default 30s), found with go test -list
	@$(GO) test -list '^Fuzz' ./... \
	| awk '/^Fuzz/ { names[n++] = $$1 } /^ok/ { for (i = 0; i < n; i++) print $$2, names[i]; n = 0 }' \
	| while read -r pkg name; do \
		echo "== $$pkg $$name ($(FUZZTIME))"; \
		$(GO) test -run='^$$' -fuzz="^$$name$$" -fuzztime=$(FUZZTIME) "$$pkg"; \
	done

# The containerd scenario needs root; elsewhere the smoke pass leaves it out.
SMOKE_SCENARIOS = $(if $(filter 0,$(shell id -u)),,--scenarios warm,manifest,herd,cold)

# BENCH_BLOBS is the size of the million-blob fixture that `make bench-go`
# builds (several minutes and about 4 GiB of small files under the system
# temp dir, or CAIRN_BENCH_DIR); the CI smoke pass uses 20,000.
BENCH_BLOBS ?= 1000000

bench: bench-harness bench-go ## cairn-bench (cairn against distribution's proxy), then the Go benchmarks

bench-harness: ## cairn-bench: cairn side by side with distribution's proxy mode; writes benchmarks/results/latest.{md,json}
	$(GO) run ./benchmarks/cmd/cairn-bench --out benchmarks/results

bench-go: ## the Go benchmarks in ./benchmarks, with the million-blob fixture
	@if [ -z "$(BENCH_PKGS)" ]; then echo "no benchmark packages yet"; else \
		CAIRN_BENCH_MILLION=$(BENCH_BLOBS) $(GO) test -run='^$$' -bench=. -timeout=60m $(BENCH_PKGS); fi

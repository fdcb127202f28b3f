# kiln — see README.md. `make help` lists the targets.
# Go from PATH, or where the official tarball puts it; tests run go too.
export PATH := $(PATH):/usr/local/go/bin:/usr/sbin:/sbin
# pipefail: a failing go test is not hidden by the summary it is piped to.
SHELL   := /bin/bash -o pipefail
GO      ?= go
MOD     := $(shell $(GO) list -m 2>/dev/null)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X $(MOD)/internal/version.Version=$(VERSION)
BIN     := _output/bin

.PHONY: help all build kiln test unit integration fuzz bench demo deps lint clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

all: build

build: kiln ## build everything

kiln: ## the kiln CLI, in _output/bin/kiln
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/kiln ./cmd/kiln

deps: ## install apt packages and Go modules (idempotent)
	@./hack/deps.sh

# The full pass runs packages in parallel; tests that boot guests take turns
# (testutil.VMSlot), so a guest never competes with another for the cores.
# testsum prints each package's verdict, every failure in full, and the
# slowest tests at the end (also in _output/test-times.txt).
test: deps ## everything CI runs: vet, unit (race), integration with real tools, fuzz smoke
	$(GO) vet ./...
	$(GO) test -race -short -count=1 ./...
	CI=$${CI:-true} $(GO) test -json -count=1 -timeout 80m ./... | $(GO) run ./hack/testsum -o _output/test-times.txt
	$(MAKE) fuzz FUZZTIME=10s

unit: ## fast unit tests only
	$(GO) test -short ./...

integration: deps ## integration tests (real QEMU, cloud-init, ...), with the time summary
	$(GO) test -json -count=1 -timeout 80m ./... | $(GO) run ./hack/testsum -o _output/test-times.txt

FUZZTIME ?= 30s
# Inputs are a few KB: long minimisation would eat the whole budget.
FUZZ = $(GO) test -run='^$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s
fuzz: ## run every fuzz target for FUZZTIME
	$(FUZZ) -fuzz='^FuzzLoad$$' ./recipes
	$(FUZZ) -fuzz='^FuzzISORoundTrip$$' ./iso
	$(FUZZ) -fuzz='^FuzzRead$$' ./iso
	$(FUZZ) -fuzz='^FuzzReadGPT$$' ./disk/gpt
	$(FUZZ) -fuzz='^FuzzExt4Open$$' ./disk/ext4
	$(FUZZ) -fuzz='^FuzzCheck$$' ./disk/image
	$(FUZZ) -fuzz='^FuzzParseRef$$' ./registry
	$(FUZZ) -fuzz='^FuzzInspectManifest$$' ./registry
	$(FUZZ) -fuzz='^FuzzLoadFleet$$' ./deploy

bench: deps kiln ## benchmarks against reference tools, printed as ratios
	$(GO) run ./hack/bench

demo: deps kiln ## kiln's main job on its embedded defaults
	./hack/demo.sh

lint: ## gofmt and vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

clean:
	rm -rf _output

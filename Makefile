# kiln — see README.md. `make help` lists the targets.
GO      ?= go
MOD     := $(shell $(GO) list -m 2>/dev/null)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X $(MOD)/internal/version.Version=$(VERSION)
BIN     := _output/bin
export PATH := $(PATH):/usr/sbin:/sbin

.PHONY: help all build kiln test unit integration fuzz bench demo deps lint clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

all: build

build: kiln ## build everything

kiln: ## the kiln CLI, in _output/bin/kiln
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/kiln ./cmd/kiln

deps: ## install apt packages and Go modules (idempotent)
	@./hack/deps.sh

test: deps ## everything CI runs: vet, unit (race), integration with real tools, fuzz smoke
	$(GO) vet ./...
	$(GO) test -race -short -count=1 ./...
	CI=$${CI:-true} $(GO) test -count=1 -timeout 80m ./...
	$(MAKE) fuzz FUZZTIME=15s

unit: ## fast unit tests only
	$(GO) test -short ./...

integration: deps ## integration tests (real QEMU, cloud-init, ...)
	$(GO) test -count=1 -timeout 80m ./...

FUZZTIME ?= 30s
fuzz: ## run every fuzz target for FUZZTIME
	$(GO) test -run='^$$' -fuzz='^FuzzLoad$$' -fuzztime=$(FUZZTIME) ./recipes
	$(GO) test -run='^$$' -fuzz='^FuzzISORoundTrip$$' -fuzztime=$(FUZZTIME) ./iso
	$(GO) test -run='^$$' -fuzz='^FuzzRead$$' -fuzztime=$(FUZZTIME) ./iso

bench: deps kiln ## benchmarks against reference tools, printed as ratios
	$(GO) run ./hack/bench

demo: deps kiln ## kiln's main job on its embedded defaults
	./hack/demo.sh

lint: ## gofmt and vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

clean:
	rm -rf _output

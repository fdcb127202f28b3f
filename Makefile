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

.PHONY: help all build kiln plugin plugin-install plugin-release plugin-test plugin-vet test unit integration fuzz bench demo deps lint clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

all: build

build: kiln plugin ## build everything

kiln: ## the kiln CLI, in _output/bin/kiln
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/kiln ./cmd/kiln

# The Packer plugin is a nested module (cmd/packer-plugin-kiln/go.mod): the
# Packer SDK's dependencies and its go-cty replace stay out of kiln's own.
# `go test ./...` at the root does not enter it; plugin-test and plugin-vet do.
PLUGIN_DIR     := cmd/packer-plugin-kiln
PLUGIN_MOD     := $(MOD)/$(PLUGIN_DIR)
# A release is PLUGIN_VERSION without the -dev suffix (make plugin-release
# PLUGIN_VERSION=0.2.0); dev builds report <version>-dev.
PLUGIN_VERSION ?= $(shell sed -n 's/^\tVersion = "\(.*\)"/\1/p' $(PLUGIN_DIR)/version/version.go)
PLUGIN_API     := x5.0
PLUGIN_LDFLAGS := $(LDFLAGS) -X $(PLUGIN_MOD)/version.Version=$(PLUGIN_VERSION)
RELEASE        := _output/release
PACKER         ?= packer

plugin: ## the Packer plugin (dev build), in _output/bin/packer-plugin-kiln
	cd $(PLUGIN_DIR) && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(PLUGIN_LDFLAGS)" -o $(CURDIR)/$(BIN)/packer-plugin-kiln .

plugin-install: plugin ## install the plugin into Packer (packer plugins install --path)
	$(PACKER) plugins install --path $(BIN)/packer-plugin-kiln github.com/kiln-project/kiln

plugin-release: ## release binary and SHA256SUMS in Packer's layout, in _output/release
	rm -rf $(RELEASE) && mkdir -p $(RELEASE)
	cd $(PLUGIN_DIR) && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath \
		-ldflags "$(PLUGIN_LDFLAGS) -X $(PLUGIN_MOD)/version.VersionPrerelease=" \
		-o $(CURDIR)/$(RELEASE)/packer-plugin-kiln_v$(PLUGIN_VERSION)_$(PLUGIN_API)_linux_amd64 .
	cd $(RELEASE) && for f in packer-plugin-kiln_v*; do zip -q -X $$f.zip $$f && rm $$f; done \
		&& sha256sum *.zip > packer-plugin-kiln_v$(PLUGIN_VERSION)_SHA256SUMS
	@cat $(RELEASE)/*_SHA256SUMS

plugin-vet: ## vet the plugin's module
	cd $(PLUGIN_DIR) && $(GO) vet ./...

plugin-test: ## the plugin's tests, acceptance on a real Packer core included
	cd $(PLUGIN_DIR) && CI=$${CI:-true} $(GO) test -json -count=1 -timeout 60m ./... | $(GO) run $(CURDIR)/hack/testsum -o $(CURDIR)/_output/plugin-test-times.txt

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
	$(MAKE) plugin-vet plugin-test
	$(MAKE) fuzz FUZZTIME=20000x

unit: ## fast unit tests only
	$(GO) test -short ./...

integration: deps ## integration tests (real QEMU, cloud-init, ...), with the time summary
	$(GO) test -json -count=1 -timeout 80m ./... | $(GO) run ./hack/testsum -o _output/test-times.txt

FUZZTIME ?= 30s
# No minimisation: a smoke run needs the crasher, not its smallest form, and
# a minimisation still running when -fuzztime ends fails the run with
# "context deadline exceeded" (seen on FuzzISORoundTrip and FuzzCheck). A
# duration can still fail that way when a worker is busy at the deadline
# (seen on FuzzExt4Open): make test runs a count of inputs (-fuzztime Nx),
# which sets no deadline.
FUZZ = $(GO) test -run='^$$' -fuzztime=$(FUZZTIME) -fuzzminimizetime=0s
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
	$(FUZZ) -fuzz='^FuzzParseStatus$$' ./disk/imagediff
	$(FUZZ) -fuzz='^FuzzParseLock$$' ./manifest

bench: deps kiln plugin ## benchmarks against reference tools, printed as ratios
	$(GO) run ./hack/bench

demo: deps kiln ## kiln's main job on its embedded defaults
	./hack/demo.sh

lint: ## gofmt and vet (the plugin's module too)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(MAKE) plugin-vet

clean:
	rm -rf _output

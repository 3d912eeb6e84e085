# clozeloop build entry point. Every Go target sources scripts/env.sh first:
# it detects libtorch (Debian's 1.13 or an official one via LIBTORCH=/path),
# picks the compatibility header and CUDA stub libraries when needed and
# exports the cgo flags. Plain "go build" without it stops with a message that
# points here.
#
#   make dev     set up this machine, build, run the main job
#   make test    go vet + all tests (what CI runs)

SHELL := /bin/bash
.SHELLFLAGS := -e -o pipefail -c
.DEFAULT_GOAL := build

# Go lives in /usr/local/go on the reference machines; keep it reachable for
# non-login shells (CI runs as root with a minimal PATH).
export PATH := $(PATH):/usr/local/go/bin

ENV := source scripts/env.sh &&
GO ?= go
# Per test binary. The first build of gotch's libtch (4-5 min on 2 cores) and
# of the Temporal server happens before the clock starts.
TEST_TIMEOUT ?= 20m
TEST_FLAGS ?=
PKGS ?= ./...
BENCH ?= .
BENCH_FLAGS ?= -benchmem -benchtime=3x

# System packages (apt on Debian/Ubuntu) are listed in scripts/setup.sh, which
# "make setup" and the Docker images' build and runtime stages run.
# npm tools installed globally by "make setup" (none yet).
NPM_TOOLS :=

# Debian's PyTorch (python3-torch) is the numeric and speed reference; a
# pyenv or venv python3 earlier on PATH usually lacks it.
ifneq ($(wildcard /usr/bin/python3),)
export CLOZELOOP_PYTHON ?= /usr/bin/python3
endif

.PHONY: setup tools build test test-short e2e dev bench fmt vet doctor clean

## setup: install missing system packages (apt on Debian/Ubuntu; sudo when not root)
setup:
	@scripts/setup.sh all
	@for t in $(NPM_TOOLS); do \
		command -v "$$t" >/dev/null || npm install -g "$$t"; \
	done
	@command -v $(GO) >/dev/null || { echo "setup: Go not found: install Go $$(sed -n 's/^go //p' go.mod) into /usr/local/go" >&2; exit 1; }

## build: build bin/clozeloop
build:
	$(ENV) $(GO) build -o bin/clozeloop ./cmd/clozeloop

# The Versity S3 Gateway (github.com/versity/versitygw, Apache-2.0), an
# S3-compatible server teams run in production: "make test" runs the store's
# whole suite against it besides the embedded server.
VERSITYGW_VERSION := v1.8.0
TOOLS_DIR ?= $(or $(CLOZELOOP_CACHE),$(HOME)/.cache/clozeloop)/tools
VERSITYGW := $(TOOLS_DIR)/versitygw-$(VERSITYGW_VERSION)/versitygw

$(VERSITYGW):
	GOBIN=$(dir $@) CGO_ENABLED=0 $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)

## tools: install the test-only helpers: the Node.js one (real Hugging Face
## tokenizers) and a real S3 server (Versity S3 Gateway, built from the Go
## module proxy, pinned) that the store's tests also run against. (The rule
## comes after VERSITYGW's definition: make expands a rule's prerequisites
## where it reads the rule.)
tools: tools/hfparity/node_modules/.package-lock.json $(VERSITYGW)

tools/hfparity/node_modules/.package-lock.json: tools/hfparity/package-lock.json
	@command -v npm >/dev/null || { echo "tools: npm not found: run 'make setup' (installs nodejs npm)" >&2; exit 1; }
	npm ci --prefix tools/hfparity --no-audit --no-fund

## test: go vet and all tests (the README's and CI's test command)
# The second go test runs the store's suite again against the gateway, then
# the multi-process e2e test runs (make e2e).
test: tools
	$(ENV) $(GO) vet $(PKGS) && CLOZELOOP_TEST_VERSITYGW=$(VERSITYGW) $(GO) test -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) $(PKGS)
	$(ENV) CLOZELOOP_TEST_S3_BACKEND=versitygw CLOZELOOP_TEST_VERSITYGW=$(VERSITYGW) \
		$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) ./store/
	$(MAKE) e2e

## e2e: the multi-process end-to-end test of the production topology
## (Temporal on PostgreSQL, the Versity S3 Gateway, 2 default + 2 gpu
## workers and the hook as separate processes of bin/clozeloop; see README)
e2e: tools build
	$(ENV) CLOZELOOP_E2E_BIN=$(CURDIR)/bin/clozeloop CLOZELOOP_TEST_VERSITYGW=$(VERSITYGW) \
		$(GO) test -count=1 -v -timeout 20m -run TestMultiProcessRound ./e2e/

## test-short: the quick tests only (skips real-server, WordNet-size and training tests)
test-short: tools
	$(ENV) CLOZELOOP_TEST_VERSITYGW=$(VERSITYGW) $(GO) test -short -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) $(PKGS)

## dev: set up, build, check the machine and run everything embedded
## (Temporal + Web UI, S3, workers, annotation hook, a demo run) until Ctrl-C.
## DEV_FLAGS=--demo-annotate answers the demo batches from gold and exits.
DEV_DATA ?= clozeloop-data
DEV_FLAGS ?=
dev: setup build
	bin/clozeloop doctor
	bin/clozeloop dev --data $(DEV_DATA) $(DEV_FLAGS)

## bench: run benchmarks (BENCH=regexp PKGS=./pkg/...)
bench:
	$(ENV) $(GO) test -run '^$$' -bench '$(BENCH)' $(BENCH_FLAGS) -timeout 60m $(PKGS)

## fmt: gofmt all Go files
fmt:
	$(ENV) $(GO) fmt $(PKGS)

## vet: go vet
vet:
	$(ENV) $(GO) vet $(PKGS)

## doctor: build and check the libtorch setup
doctor: build
	bin/clozeloop doctor

## clean: remove bin/ and the CUDA stub libraries (the Go build cache stays)
clean:
	rm -rf bin/ .cache/cuda-stubs

# Every target runs from a clean clone; `make test` is the test command in
# README.md and the one .ci/run calls.
GO      ?= go
BIN     := bin
# The version is the tag (if any) and the commit, as `runner version` shows them.
VERSION := $(shell git describe --tags --dirty 2>/dev/null)
COMMIT  := $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
export CGO_ENABLED = 0

.PHONY: build image test test-unit fuzz lint bench bench-run clean

build: ## bin/runner and bin/runner-agent, static
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/runner ./cmd/runner
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/runner-agent ./cmd/runner-agent

image: build ## the default agent image, from this machine's files
	$(BIN)/runner image build

# The engine suite needs a Docker daemon (and, in CI, the rootless one that
# .ci/run starts); it fails rather than skips without one.
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 40m ./...

test-unit: ## no engine needed
	$(GO) test -count=1 ./internal/...

fuzz: ## every fuzz target for FUZZTIME each (default 10s)
	scripts/fuzz.sh

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# bench runs every benchmark (bench-run), keeps their output in BENCH_OUT,
# and prints one table of every figure beside its goal (bench/table). A
# benchmark that fails does not stop the others; the table lists it and
# make bench then fails.
BENCH_OUT ?= bench-results.txt
bench: build
	$(MAKE) --no-print-directory -i bench-run 2>&1 | tee $(BENCH_OUT)
	$(GO) run ./bench/table < $(BENCH_OUT)

bench-run:
	$(GO) test -run '^$$' -bench Scale -benchtime 1x -timeout 30m ./bench/
	$(GO) test -run '^$$' -bench 'Apply10$$' -benchtime 3x -timeout 30m ./bench/
	$(GO) test -run '^$$' -bench Apply10Engines -benchtime 1x -timeout 40m ./bench/
	$(GO) test -run '^$$' -bench ContainerdRemap -benchtime 3x -timeout 30m ./bench/
	$(GO) test -run '^$$' -bench SendToPane -benchtime 200x -timeout 30m ./bench/
	$(GO) test -run '^$$' -bench Idle50 -benchtime 1x -timeout 30m ./bench/
	$(GO) test -run '^$$' -bench ServicesRestart -benchtime 5x -timeout 30m ./bench/
	$(GO) test -run '^$$' -bench RelayMemory50 -benchtime 1x -timeout 30m ./bench/
	$(GO) test -run '^$$' -bench ApplyWorkspace4 -benchtime 1x -timeout 30m ./bench/
	$(GO) test -run '^$$' -bench DiskFsync -benchtime 3s -timeout 30m ./internal/relay/
	$(GO) test -run '^$$' -bench RelayAccept -benchtime 3s -timeout 30m ./internal/relay/
	$(GO) test -run '^$$' -bench RelayPaced -benchtime 1x -timeout 30m ./internal/relay/
	$(GO) test -run '^$$' -bench RelayMemory1M -benchtime 1x -timeout 30m ./internal/relay/
	$(GO) test -run '^$$' -bench AuditAppend -benchtime 2s -timeout 30m ./internal/audit/
	$(GO) test -run '^$$' -bench Download256MiB -benchtime 8x -timeout 30m ./internal/egress/proxy/
	$(GO) test -run '^$$' -bench ConnectSetup -benchtime 3000x -timeout 30m ./internal/egress/proxy/
	$(GO) test -run '^$$' -bench Injected -benchtime 2000x -timeout 30m ./internal/egress/inject/

clean:
	rm -rf $(BIN)

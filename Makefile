# raypriv: `make demo` and `make test` are the whole set-up on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
PY := $(VENV)/bin/python
# pip's config on some machines lists local indexes that do not exist; hide that noise only.
QUIET_PIP := { grep -v "^WARNING: Location" || true; }

.PHONY: demo test test-fast venv bench clean

# (Re)build the virtual environment whenever it is missing or pyproject.toml changed.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2>&1 | $(QUIET_PIP)
	$(PY) -m pip install --quiet -e '.[test]' 2>&1 | $(QUIET_PIP)
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/raypriv demo

test: $(STAMP)
	$(PY) -m pytest tests

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" tests

bench: $(STAMP)
	$(PY) benchmarks/unlearnable_speed.py

clean:
	rm -rf $(VENV) build *.egg-info

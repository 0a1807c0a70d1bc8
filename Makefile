# The two commands a newcomer needs: `make demo` and `make test`.
SHELL := /bin/bash
PYENV_PY := $(shell command -v pyenv >/dev/null 2>&1 && echo $$(pyenv root)/versions/3.13.0/bin/python3)
PYTHON ?= $(shell if [ -x "$(PYENV_PY)" ]; then echo $(PYENV_PY); elif command -v python3.13 >/dev/null 2>&1; then echo python3.13; else echo python3; fi)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: venv demo test lint typecheck unit proto-check sam-check bench clean

$(VENV)/.installed: requirements-dev.txt layers/core/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(PY) scripts/demo.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

proto-check: venv
	PYTHON=$(PY) scripts/genproto.sh --check

unit: venv
	$(PY) -m pytest -q

sam-check: venv
	scripts/sam-check.sh

test: lint typecheck proto-check unit sam-check

bench: venv
	$(PY) bench/renewal_bench.py --sizes 10,100,1000
	$(PY) bench/http2_bench.py --clusters 1000
	$(PY) bench/event_bench.py --sizes 10,100,1000
	$(PY) bench/discovery_bench.py --clusters 1000
	$(PY) bench/rotation_bench.py --clusters 1000
	$(PY) bench/fanout_bench.py --outputs 20 --clusters 200
	$(PY) bench/import_time.py --layer

clean:
	rm -rf $(VENV) .aws-sam

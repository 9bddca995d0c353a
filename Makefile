# RigShift: `make run` starts the product on embedded defaults; `make test` runs the whole suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# `make test` runs the suite on one xdist worker per core (tests/parallel.py); PYTEST_WORKERS=0 runs it in one process.
PYTEST_WORKERS ?= auto
export HOST PORT

.PHONY: run test venv lint typecheck check bench clean browsers

# requirements-dev.txt includes requirements.txt and the optional extra requirements-plots.txt (simulate --plots).
$(STAMP): requirements.txt requirements-plots.txt requirements-dev.txt agent/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet -e agent/
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) manage.py runstack --host $(HOST) --port $(PORT)

browsers:
	bash scripts/ensure-chromium.sh

test: $(STAMP) browsers
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy .

check: lint typecheck

clean:
	rm -rf $(VENV) var staticfiles .mypy_cache .ruff_cache .pytest_cache

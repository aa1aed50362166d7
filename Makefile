# favgate: `make run` starts the gateway on the embedded database, `make test` runs the suite
# (what CI runs), `make test-fast` the inner loop: the suite without the tests marked slow.
# Both create .venv and install everything on first use.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# The real GraphQL clients the tests run in Node (tests/js), installed from the lockfile.
JS := tests/js
JS_INSTALLED := $(JS)/node_modules/.installed

.PHONY: install run test test-fast lint format clean bench bench-soak

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "favgate needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[embedded,dev]'
	touch $@

install: $(INSTALLED)

$(JS_INSTALLED): $(JS)/package.json $(JS)/package-lock.json
	cd $(JS) && npm ci --no-audit --no-fund
	touch $@

run: install
	$(BIN)/favgate serve --demo

# Without npm (.ci/run installs it) the tests that need Node skip, as the browser tests do
# without Chromium.
test: install
	@if command -v npm >/dev/null; then $(MAKE) --no-print-directory $(JS_INSTALLED); \
	else echo "npm not found: the Node client tests will skip (apt-get install nodejs npm)"; fi
	$(BIN)/pytest $(PARALLEL)

# The inner loop: no real processes, browsers, Node clients, property runs or real-time waits
# (the `slow` marker, pyproject.toml). More pytest options in ARGS: make test-fast ARGS=-x
test-fast: install
	$(BIN)/pytest $(PARALLEL) -m "not slow" -p no:cacheprovider -q $(ARGS)

# A worker per core (pytest-xdist), each test module on one worker: its fixtures and its
# order as they are. Every worker runs its own database server; plain `pytest` runs serially.
PARALLEL := -n auto --dist loadfile

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The benchmark (bench/README.md): favgate beside a raw baseline, under 10 minutes.
bench: install
	@$(WRK)
	$(BIN)/python bench/run.py

# Five minutes of load, watching the gateway's memory for growth.
bench-soak: install
	@$(WRK)
	$(BIN)/python bench/run.py --soak 300

# wrk, Debian's package, installed when missing (as root, else through sudo).
WRK := command -v wrk >/dev/null || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq wrk; }

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) $(JS)/node_modules .favgate .pytest_cache .mypy_cache .ruff_cache .hypothesis

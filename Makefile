# Two commands do all the set-up: `make demo` and `make test`.
# The first Python >= 3.11 that actually runs (pyenv shims may exist for absent versions).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do   $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
# `make demo` runs from a virtualenv of its own holding only the runtime dependencies
# (about 64 MB); the development tools (Playwright, kubectl, hadolint...) go into .venv.
DEMO_VENV := .venv-demo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-fast lint typecheck unit tools node venv bench screenshot dist mixin clean

demo: $(DEMO_VENV)/.installed  ## run the daemon against the built-in simulated API
	$(DEMO_VENV)/bin/elevenlabs-link-monitor demo

$(DEMO_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/pip install --quiet --no-cache-dir -e .
	touch $@

test: venv tools node lint typecheck  ## every linter and every test, with branch coverage (what CI runs)
	$(BIN)/pytest -n 2 --dist loadfile --cov=monitor --cov-branch --cov-report=term

# The unit layer only (tests/unit: pure and in-process), under a minute: the inner loop.
test-fast: venv  ## the unit tests only, no linter (under 60 s)
	$(BIN)/pytest tests/unit

lint: venv node
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	node_modules/.bin/biome ci monitor/web/static

# The status page's JavaScript tools, pinned by package-lock.json: Biome lints and formats the
# script and the stylesheet; axe-core checks the page's accessibility in the browser tests.
node: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

screenshot: venv tools  ## refresh docs/status-page.png from `make demo` in Chromium
	$(BIN)/python -m tests.system.browser.screenshot docs/status-page.png

typecheck: venv
	$(BIN)/mypy

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Real tools for real tests, from Debian: Prometheus and promtool, amtool for the Alertmanager
# config, Chromium for the browser tests (libatomic1 is needed by Playwright's driver on a
# minimal Debian), libfaketime for a real step of the wall clock.
tools:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null \
	  && command -v amtool >/dev/null && command -v faketime >/dev/null \
	  && command -v chromium >/dev/null && ldconfig -p | grep -q libatomic.so.1 || { \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	    prometheus prometheus-alertmanager chromium libatomic1 faketime >/dev/null; }

# The daemon runs on the runtime-only virtualenv (as the image has it); the script, the
# simulated API and the SDK loop on the development one.
bench: venv $(DEMO_VENV)/.installed  ## figures of docs' Performance section (about 3 minutes; --quick: under 1)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/bench.py --daemon-python $(DEMO_VENV)/bin/python $(BENCH_ARGS)

# What a release publishes, into dist/: the sdist and wheel (twine-checked), the chart packaged by
# Helm's engine, the SBOM of the runtime dependencies and SHA256SUMS; reproducible from the
# commit (SOURCE_DATE_EPOCH = its time). The image is built from the same wheel (Dockerfile).
dist: venv  ## the release's artifacts, checked and reproducible, in dist/ (about 20 s)
	rm -rf dist
	$(BIN)/python deploy/release/dist.py --outdir dist

# The monitoring mixin (deploy/mixin/) is the one source of the alert and recording rules:
# rewrite rules.yml, the chart's PrometheusRule, the Grafana dashboard and alert rules from it.
mixin: venv  ## regenerate every rules file and the dashboard from deploy/mixin
	$(BIN)/python deploy/mixin/build.py

clean:
	rm -rf dist $(VENV) $(DEMO_VENV) node_modules .mypy_cache .pytest_cache .ruff_cache .hypothesis

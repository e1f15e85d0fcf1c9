# The two commands a new machine needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

PROMTOOL := .tools/usr/bin/promtool
# axe-core, the accessibility engine tests/web/test_accessibility.py runs in Chromium: the
# released package from the npm registry (its LICENSE beside it), pinned.
AXE_VERSION := 4.14.1
AXE := .tools/node_modules/axe-core/axe.min.js

.PHONY: demo test lint typecheck bench clean tools screenshots

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# `make demo SERVE=1` serves a demo shop in the browser until Ctrl-C (PORT=8000 by default)
# instead of the walkthrough: refundry/demo/serve.py.
demo: $(STAMP)
	$(BIN)/python -m refundry.demo $(if $(SERVE),--serve --port $(or $(PORT),8000))

lint: $(STAMP)
	$(BIN)/ruff check refundry tests bench
	$(BIN)/ruff format --check refundry tests bench

typecheck: $(STAMP)
	$(BIN)/mypy refundry

# Outside programs the tests run: promtool (`promtool check metrics`), unpacked from Debian's
# prometheus package into .tools/ (no service installed). Without apt the tests that need it
# skip (and fail under CI=true). And axe-core (below), from the npm registry.
tools: $(PROMTOOL) $(AXE)

$(AXE):
	@mkdir -p .tools
	@npm install --prefix .tools --no-save --no-audit --no-fund --silent axe-core@$(AXE_VERSION) \
	  >/dev/null 2>&1 || echo "make tools: could not install axe-core (needs npm); its tests fail"

$(PROMTOOL):
	@mkdir -p .tools
	@cd .tools && { apt-get download prometheus >/dev/null 2>&1 || \
	  { apt-get update -qq >/dev/null 2>&1 && apt-get download prometheus >/dev/null 2>&1; }; } && \
	  dpkg-deb -x prometheus_*.deb . && rm -f prometheus_*.deb || \
	  echo "make tools: could not unpack promtool (needs apt-get); its tests will skip"

# JOBS processes (pytest-xdist; each its own databases and browser); JOBS=1 runs in one.
JOBS ?= 2
test: lint typecheck tools
	$(BIN)/pytest -n $(JOBS) --durations=30

# The pages' pictures in docs/pages/ (docs/pages.md), taken in Debian's Chromium with a
# Chinese font (Debian's fonts-wqy-microhei; installed here when missing: needs root).
screenshots: $(STAMP)
	@test -x /usr/bin/chromium || apt-get install -y -qq chromium
	@fc-list | grep -qi "wqy" || apt-get install -y -qq fonts-wqy-microhei
	$(BIN)/python -m tests.web.screenshots --out docs/pages

bench: $(STAMP)
	$(BIN)/python bench/plan_bench.py
	$(BIN)/python bench/apply_bench.py --backend both

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Every target bootstraps .venv from requirements.txt first (again when requirements.txt or pyproject.toml changes).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export NO_MKDOCS_2_WARNING := 1

.PHONY: serve build test lint outputs timings reproducible bench tables figures notebooks colab api-inventory gpu-check matrix lighthouse browser-deps clean

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

serve: $(STAMP)  ## zh at http://127.0.0.1:8000/ , en at /en/
	SITE_URL=http://127.0.0.1:8000/ $(BIN)/mkdocs serve --dev-addr 127.0.0.1:8000

build: $(STAMP)  ## static site in site/
	$(BIN)/mkdocs build --strict

# Two workers (pytest-xdist): one runs the tests that read the site or wait for the background work (the
# build, the pages' runs), which it starts; the other takes the rest, and so does the first when it is
# done (pagekit/pytest_plugin.py). TEST_WORKERS=0: one process, as `make gpu-check` and `make matrix` run.
TEST_WORKERS ?= 2
# Bytecode is cached (__pycache__/, ignored by git) even where the shell sets PYTHONDONTWRITEBYTECODE:
# without it every process of the run (pytest's assertion rewriting, the builds, the page runs)
# compiles the same sources again.
test: $(STAMP) lint  ## every test, every block shown on the site
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS))

lint: $(STAMP)   ## ruff (pinned) over snippets/, the code readers copy
	$(BIN)/ruff check snippets

# Every output fence on a page comes from a run: this reruns each chapter's blocks in order on
# the pinned CPU versions and rewrites the fences of both languages (`-- --check`: report only).
outputs: $(STAMP)  ## rewrite the pages' expected outputs from a real run
	$(BIN)/python -m tools.outputs $(PAGES)

timings: $(STAMP)  ## the four budget figures: build warm/cold, make test warm/fresh clone
	$(BIN)/python -m tools.timings $(TIMINGS_ARGS)

reproducible: $(STAMP)  ## two cold builds and a warm one, byte for byte; lists every file that differs
	$(BIN)/python -m tools.reproducible $(REPRODUCIBLE_ARGS)

bench: $(STAMP)  ## the layers chapter's speed tables -> generated/layers-bench.{json,zh.md,en.md}
	$(BIN)/python -m tools.bench_layers

tables: $(STAMP)  ## the multi-gpu chapter's load table -> generated/multi-gpu-table.{zh,en}.md
	$(BIN)/python -m snippets.multi_gpu --table

figures: $(STAMP)  ## every picture shown on a page -> docs/assets/img/
	$(BIN)/python -m tools.figures

notebooks: $(STAMP)  ## the lab notebooks (tools/make_notebooks.py) -> docs/{zh,en}/labs/*.ipynb
	$(BIN)/python -m tools.make_notebooks

colab: $(STAMP)  ## each chapter's notebook as Colab opens it from the repository -> notebooks/{zh,en}/<slug>.ipynb
	$(BIN)/python -m tools.colab_notebooks

api-inventory: $(STAMP)  ## API names -> their docs.pytorch.org pages, from the installed torch -> generated/api-inventory.json
	$(BIN)/python -m tools.api_inventory

# On a CUDA machine, with that machine's own python3 and torch (not .venv, not requirements.txt's pin):
# every `cuda` test and every block shown on the site -> generated/gpu-report.{json,md}, generated/verified.{zh,en}.md.
# Missing test/docs packages come from WHEELS (default .whl/): python -m tools.gpu_check --download-wheels .whl
GPU_PYTHON ?= python3
WHEELS     ?=
gpu-check:       ## needs a CUDA GPU; refuses on a CPU machine
	$(GPU_PYTHON) -m tools.gpu_check $(if $(WHEELS),--wheels $(WHEELS))

# Other torch releases, on CPU: for each, a fresh venv (.cache/matrix/, removed after its run) with that
# torch from PyPI, its torchvision and the page/test packages; every page's blocks and every claim test
# (not the site build, not the browser) -> generated/matrix.{json,md}, generated/matrix-summary.{zh,en}.md.
# Downloads several GB per release into one shared wheel folder (.cache/matrix/wheels); not part of `make test`.
MATRIX      ?=
MATRIX_ARGS ?=
matrix:          ## e.g. make matrix MATRIX="2.11.0 2.15.0"; default: tools/matrix.py's RELEASES
	$(PYTHON) -m tools.matrix $(MATRIX) --python $(PYTHON) $(MATRIX_ARGS)

# Browser tests (tests/test_browser.py) need Debian's Chromium, a CJK font and a math font (formulas'
# stretchy brackets); they run in its headless shell (the same Blink without the browser's own UI: about a
# fifth less CPU), Lighthouse in Chromium itself. Run as root (apt-get).
browser-deps:    ## apt-get install chromium chromium-headless-shell fonts-wqy-microhei fonts-dejavu-extra, when missing
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromium-headless-shell >/dev/null 2>&1 \
	    || ! fc-list 2>/dev/null | grep -qi wenquanyi \
	    || ! fc-list 2>/dev/null | grep -qi 'DejaVu Math'; then \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-headless-shell fonts-wqy-microhei fonts-dejavu-extra >/dev/null; fi

# Lighthouse 12.x (package.json; 13.x needs Node >= 22.19) on home, a chapter, a lab and the errata,
# both languages, served gzipped on 127.0.0.1:LH_PORT; each score is the median of 3 runs
# (performance moves a few hundredths between runs). LH_ARGS="--runs 1" for one quick run.
LH_PORT ?= 8765
LH_ARGS ?= --runs 3
lighthouse: $(STAMP) node_modules/.installed  ## scores per page -> build/lighthouse/
	SITE_URL=http://127.0.0.1:$(LH_PORT)/ $(BIN)/mkdocs build --strict --quiet --site-dir build/lighthouse-site
	CHROME_PATH=$${CHROME_PATH:-/usr/bin/chromium} node tools/lighthouse.mjs build/lighthouse-site --port $(LH_PORT) $(LH_ARGS)

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

clean:
	rm -rf site .cache .pytest_cache build/lighthouse build/lighthouse-site

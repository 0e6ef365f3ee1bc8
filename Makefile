# medfound: two commands on a fresh machine (see README)
#   make book   - install, fetch the offline data, run every chapter (PROFILE=cpu) and render the book
#   make test   - install, then what CI runs: export/clean check, pytest, the smoke book (every notebook
#                 executed under the smoke profile, two at a time: this is the notebook test), and the
#                 smoke book opened in Chromium (browser-test). `make nbtest` (nbdev_test) is the same
#                 notebook test without the book; CI does not run it too (it would execute every notebook twice).
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
PROFILE ?= cpu
CHAPTERS ?=
export PATH := $(BIN):$(PATH)
export PYTHONUNBUFFERED := 1

.PHONY: install data book run build test check-export nbtest nbtest-order pytest smoke-book clean

$(VENV)/.installed: requirements.txt requirements-nodeps.txt setup.py settings.ini
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

install: $(VENV)/.installed

data: install
	$(BIN)/medfound data fetch

run: data
	$(BIN)/medfound book run --profile $(PROFILE) $(if $(CHAPTERS),--chapters $(CHAPTERS))

build: install
	$(BIN)/medfound book build --profile $(PROFILE)

# main job: every chapter under PROFILE, then the book (built even if a chapter failed; exit non-zero then)
book: data
	$(BIN)/medfound book all --profile $(PROFILE) $(if $(CHAPTERS),--chapters $(CHAPTERS))

check-export: install
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	@if git rev-parse --git-dir >/dev/null 2>&1 && [ -n "$$(git status --porcelain -- medfound nbs)" ]; then \
	  echo "nbdev_export/nbdev_clean changed files: the notebooks and medfound/ disagree"; git status --porcelain -- medfound nbs; exit 1; fi

# Tests run on machines without a GPU: Triton kernels go through its interpreter. Set for the whole
# process so that a worker which imported triton for one notebook is already in interpreter mode for the next.
nbtest pytest smoke-book: export TRITON_INTERPRET := 1
# nbdev_test runs two notebooks at once on a 2-core machine: one BLAS/OpenMP thread each, or they
# oversubscribe the cores and spin (measured here: a tiny ViT fine-tune took 32 s with the default
# threads beside other work, 1.6 s with one thread).
nbtest pytest: export OMP_NUM_THREADS := 1

nbtest: data
	timeout 900 $(BIN)/nbdev_test --n_workers 2 --timing

# All notebooks in one process in reversed (or ORDER=shuffled SEED=n) order: finds tests that depend on
# what an earlier notebook left behind (nbdev_test reuses its workers). Not part of `make test`.
nbtest-order: export TRITON_INTERPRET := 1
nbtest-order: export OMP_NUM_THREADS := 1
nbtest-order: data
	timeout 1800 $(BIN)/python tests/nb_order.py --order $(or $(ORDER),reversed) --seed $(or $(SEED),0)

# two workers, whole files each (tests of a file share module fixtures and data)
pytest: data
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests --ignore=tests/test_browser.py

# Every notebook under the smoke profile, two at a time (one BLAS thread each); exits non-zero if any failed.
SMOKE_JOBS ?= 2
smoke-book: data
	$(BIN)/medfound book all --profile smoke --jobs $(SMOKE_JOBS)

# A real browser for the book's test: Debian's chromium (Playwright's own browser download needs the internet).
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO=sudo; \
	  else echo "chromium missing and no root to install it"; exit 0; fi; \
	  echo "installing chromium (apt-get)"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null \
	    || echo "apt-get install chromium failed"; }

# The smoke build opened in Chromium: tables, console errors, page weight, alt text, the record box.
# It skips (with the reason) only where chromium could not be installed.
browser-test: smoke-book chromium
	MEDFOUND_BROWSER_TEST=1 \
	MEDFOUND_NO_CHROMIUM="$$(command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || echo 'apt-get install chromium failed or was not permitted')" \
	$(BIN)/python -m pytest -q tests/test_browser.py

test: check-export pytest smoke-book browser-test

clean:
	rm -rf _runs book/_build book/chapters book/_toc.yml book/scorecard.md book/statistics.md

# The book's commands. Each one creates .venv and installs requirements.txt when missing
# (torch first, from its exact pin, so pip never pulls a CUDA build).
#   make book                               execute every chapter (papermill) and build the HTML
#   make test                               ruff, lib tests, sync test, nbval over book/, book build
#   make run CHAPTER=slug PARAMS="-p NAME VALUE ..."   re-execute one chapter into outputs/
#   make params CHAPTER=slug                list a chapter's parameters
#   make bench                              the benchmarks (benchmarks/RESULTS*.md)

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
JB := $(VENV)/bin/jb
STAMP := $(VENV)/.installed
export IBE_DISABLE_TQDM := 1

.PHONY: book test run params bench

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $$(grep -m1 '^torch==' requirements.txt)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

book: $(STAMP)
	$(PY) -m lib.book build
	$(JB) build . -n -W --keep-going

test: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(PY) -m pytest tests --durations=15
	$(PY) -m pytest --nbval book/ --nbval-sanitize-with book/nbval_sanitize.cfg
	$(JB) build . -n -W --keep-going
	$(PY) -m pytest tests/site -m site

run: $(STAMP)
	@if [ -z "$(CHAPTER)" ]; then echo 'usage: make run CHAPTER=<slug> PARAMS="-p NAME VALUE ..."'; exit 2; fi
	$(PY) -m lib.book run $(CHAPTER) $(PARAMS)

params: $(STAMP)
	$(PY) -m lib.book params $(CHAPTER)

bench: $(STAMP)
	$(PY) -m benchmarks.patching
	$(PY) -m benchmarks.directions
	$(PY) -m benchmarks.task_vectors
	$(PY) -m benchmarks.sae_training
	$(PY) -m benchmarks.grpo

# rlkit2: the two commands a new user needs (see README.md).
#   make main   set up .venv and run the main job on its embedded default
#   make test   set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= all,dev

.PHONY: setup main test test-slow lint typecheck examples wheel-test docs docs-serve ci clean

$(BIN)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The CPU build of torch first, or pip pulls several GB of CUDA packages.
	$(BIN)/python -m pip install torch==2.13.0
	$(BIN)/python -m pip install -e '.[$(EXTRAS)]'
	touch $@

setup: $(BIN)/.installed

# The main job: a small generated hopper-v5-medium dataset (D4RL's recipe on Gymnasium's Hopper-v5, collected
# with the package's shipped SAC behaviour policy, or one trained here when none is shipped; reused when
# cached), then the Q-sarsa agent trained, evaluated and plotted on it. Its small dataset lives in its own
# cache dir, so a full-size hopper-v5-medium in the user's dataset cache is neither used nor refused.
MAIN_DATA_DIR ?= $(HOME)/.cache/rlkit2/main_default
main: export RLKIT2_DATA_DIR = $(MAIN_DATA_DIR)
main: setup
	$(BIN)/rlkit2-data make hopper-v5-medium --transitions 20000 --train-steps 20000
	$(BIN)/rlkit2-train experiment=main_default

test: setup
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

lint: setup
	$(BIN)/ruff check rlkit2 envs tests experiments examples

typecheck: setup
	$(BIN)/mypy rlkit2

# The slow examples/ tests (the fast ones run in `make test`), and the installed-wheel test.
examples: setup
	$(BIN)/python -m pytest -q tests/examples -m slow

wheel-test: setup
	$(BIN)/python -m pytest -q tests/test_wheel_install.py -m slow

$(BIN)/.docs-installed: $(BIN)/.installed pyproject.toml
	$(BIN)/python -m pip install -q -e '.[docs]'
	touch $@

# The documentation site (mkdocs-material + mkdocstrings); --strict turns every warning into an error.
docs: $(BIN)/.docs-installed
	$(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(BIN)/.docs-installed
	$(BIN)/mkdocs serve

ci: test lint typecheck examples wheel-test docs

clean:
	rm -rf $(VENV) build dist *.egg-info site

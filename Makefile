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

# The main job: hopper-v5-medium (D4RL's recipe on Gymnasium's Hopper-v5, 1M rows collected with the package's
# shipped SAC behaviour policy by one process per core; made once into the dataset cache), then offline BC and
# Qsarsa-AC2 trained one after the other (two threads each: one 2-thread job beats two 1-thread jobs here, and BC
# takes a fraction of Qsarsa's time; 8k updates, an evaluation every 800), then their final scores printed
# beside the zero-action and behaviour-policy levels and drawn in $(MAIN_DIR)/learning_curves.png.
# Afterwards `rlkit2-train experiment=main_default` works on its own (the same dataset, same cache).
MAIN_DIR ?= outputs/main_default
main: setup
	$(BIN)/rlkit2-data make hopper-v5-medium
	$(BIN)/rlkit2-train -m experiment=main_default agent=offline_bc,qsarsa_ac2 trainer.threads=2 \
		hydra.sweep.dir=$(MAIN_DIR)
	$(BIN)/rlkit2-plot $(MAIN_DIR)/*/seed=* --out $(MAIN_DIR)/learning_curves.png \
		--title "hopper-v5-medium: Qsarsa-AC2 vs offline BC (8k updates)"

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

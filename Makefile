# The few commands people use. PYTHON may point at a virtual environment's interpreter.
PYTHON ?= python3

.PHONY: install test test-random test-slow lint format quickstart strip-notebooks clean

install:  ## editable install with the dev tools
	$(PYTHON) -m pip install -e ".[dev]"

test:  ## the test suite CI runs (long tests excluded)
	$(PYTHON) -m pytest -m "not slow"

test-random:  ## the same tests in a random order (pytest-random-order; rerun an order with --random-order-seed=N as printed)
	$(PYTHON) -m pytest -m "not slow" --random-order

test-slow:  ## the long tests (minutes each)
	$(PYTHON) -m pytest -m slow

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format:
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

quickstart:  ## synthetic data -> train -> baselines -> submission -> score
	fashion-retrieval run experiment=quickstart

strip-notebooks:  ## clear notebooks/ outputs before committing (tests/test_notebooks.py checks they are clear)
	$(PYTHON) -m nbstripout notebooks/*.ipynb

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache

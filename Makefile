# Two commands do all the set-up on a fresh machine:
#   make run    create .venv, install everything, train the tutorial network for 2 epochs on CIFAR-10
#   make test   create .venv, install everything, run the tests
#   make lint   ruff: the checks and the formatting CI requires (make format applies them)
#   make docs   regenerate docs/reference.md, the configuration reference, from conf/ (a test checks it is current)
# Extra arguments: make run ARGS="model.c1=12 trainer.epochs=5"   make test PYTEST_ARGS="-k data"

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch and torchvision releases that work together; pip takes these from the local disk on the project machines.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
# The real CIFAR-10 beside the repository when there is one, else ./data (downloaded when missing).
SHARED_PNG := ../shared/data/cifar10-png.tar.gz
CIFAR10_ROOT ?= $(if $(wildcard $(SHARED_PNG)),$(SHARED_PNG),./data)
export CIFAR10_ROOT

.PHONY: install run test lint format docs clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH_PINS)
	# compat mode puts the repository on sys.path, so Hydra finds conf/ and the hydra_plugins namespace.
	$(BIN)/pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	touch $@

run: install
	$(BIN)/cifar-sweep $(ARGS)

test: install
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: install  # what CI checks before the tests
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install  # fix what lint reports, where ruff can
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

docs: install
	$(BIN)/python -m cifar_sweep.reference docs/reference.md

clean:
	rm -rf $(VENV) outputs multirun build dist *.egg-info

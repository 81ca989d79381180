# Quick start: `make demo` then `make test`. Both create .venv and install when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.adtool-installed
# torch is installed first and pinned here so that pip never resolves a newer (multi-GB)
# build; pyproject.toml itself only asks for torch>=2.4. Override for another platform,
# e.g. `make test TORCH_SPEC="torch torchvision"`.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
SAMPLE_DIR ?= data/sample
PYTEST_ARGS ?=
# Two pytest workers, one torch thread each (tests/conftest.py): this machine has 2 cores.
# `make test PYTEST_WORKERS=0` runs in one process.
PYTEST_WORKERS ?= 2

.PHONY: install demo test lint sample clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

sample: install
	@test -d $(SAMPLE_DIR) || $(PY) tools/make_sample_data.py --out $(SAMPLE_DIR)

demo: sample
	$(PY) tools/train.py configs/patchcore/patchcore_effnetlite0_sample.py \
		--data-root $(SAMPLE_DIR) --category all

test: install
	$(PY) -m pytest -q --durations=15 -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf work_dirs .pytest_cache

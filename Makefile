# Two commands do all the set-up on a fresh machine:
#   make train   venv + packages + verified MNIST + train the reference net + its report
#   make test    the same environment + the whole test suite (+ docs build once docs exist)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SEED   ?= 0
EPOCHS ?= 15
OUT    ?= runs/s6-seed$(SEED)
STAMP  := $(VENV)/.installed

.PHONY: train test venv data lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned to the wheels this machine serves from disk; pyproject keeps open ranges
	$(BIN)/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1" || $(BIN)/python -m pip install -q torch torchvision
	$(BIN)/python -m pip install -q -e ".[dev,docs]"
	touch $(STAMP)

venv: $(STAMP)

data: $(STAMP)
	$(BIN)/s6lab data

train: data
	$(BIN)/s6lab train --model s6 --epochs $(EPOCHS) --seed $(SEED) --out $(OUT) --resume

test: data
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check s6lab tests examples benchmarks

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) site .pytest_cache

# Evidence for the README: the reference net, default recipe, seeds 0 1 2 (about 10 minutes here)
evidence-s6: data
	for s in 0 1 2; do $(BIN)/s6lab train --model s6 --seed $$s --out results/s6/seed$$s --resume --quiet; done

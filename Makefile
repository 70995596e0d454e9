# Two commands do all the set-up on a fresh machine:
#   make train   venv + packages + verified MNIST + train the reference net + its report
#   make test    the same environment + the whole test suite (+ docs build once docs exist)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SEED   ?= 0
OUT    ?=  # default: runs/s6/e18-s$(SEED), the layout `s6lab compare` uses
STAMP  := $(VENV)/.installed

# PREVIEW=avx2: run a benchmark with torch's libraries capped to an AVX2 CPU's instructions (fp32, AVX2 kernels, no
# bf16) on a bigger CPU, e.g. `make machines PREVIEW=avx2`: its results are labelled "capped on ..." and written
# under their own class (docs/tutorials/speed.md, Practical notes). Only the targets that name their results by
# the machine class take it: the others would write over the uncapped machine's files.
PREVIEW ?=
PREVIEW_TARGETS := machines bench-fusion bench-speedrun bench-levers bench-load bench-load-spincount \
  bench-bn-layout bench-data-parallel bench-profile recipe-confirm-patch-statistics
ifneq ($(PREVIEW),)
ifneq ($(filter-out $(PREVIEW_TARGETS),$(or $(MAKECMDGOALS),train)),)
$(error PREVIEW=$(PREVIEW) takes only $(PREVIEW_TARGETS): $(filter-out $(PREVIEW_TARGETS),$(or $(MAKECMDGOALS),train)) would write over this machine's uncapped results)
endif
endif
ifeq ($(PREVIEW),avx2)
PREVIEW_ENV := ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2
export ATEN_CPU_CAPABILITY := avx2
export ONEDNN_MAX_CPU_ISA := AVX2
export MKL_ENABLE_INSTRUCTIONS := AVX2
else ifneq ($(PREVIEW),)
$(error PREVIEW=$(PREVIEW) is not a preview: use PREVIEW=avx2 (an AVX2 CPU without bf16) or leave it out)
endif

.PHONY: bench-profile bench-bn-layout bench-load-spincount recipe-speedrun bench-data-parallel bench-fusion bench-speedrun bench-scaling bench-load chromium test-browser machines recipe-screen recipe-confirm recipe-confirm-patch-statistics docs-figures docs-serve train test venv data lint clean evidence evidence-s6 evidence-variants evidence-small bench bench-levers bench-levers-full bench-full bench-warmup-seeds

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned to the wheels this machine serves from disk; pyproject keeps open ranges
	$(BIN)/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1" || $(BIN)/python -m pip install -q torch torchvision
	$(BIN)/python -m pip install -q -e ".[dev,docs,notebook]"
	touch $(STAMP)

venv: $(STAMP)

data: $(STAMP)
	$(BIN)/s6lab data

train: data
	$(BIN)/s6lab train --model s6 --seed $(SEED) $(if $(strip $(OUT)),--out $(OUT)) --resume --strict

test: data
	$(BIN)/ruff check s6lab tests examples benchmarks docs
	$(BIN)/python -m pytest -q --durations=10

# the browser tests' Chromium: the Debian package, installed only when missing (root, or passwordless sudo).
# Playwright (the dev extra) drives it through executable_path; `playwright install` is never used.
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    chromium fonts-liberation </dev/null; }

# the HTML report and the docs site in Chromium at 1280x900; screenshots in artifacts/browser/
test-browser: chromium data
	$(BIN)/python -m pytest -q tests/test_browser.py

docs-figures: data
	$(BIN)/python docs/make_figures.py

docs-serve: $(STAMP)
	$(BIN)/mkdocs serve

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) site .pytest_cache

# ---- Evidence: every number in the README and docs comes from these commands ----
# The evidence-* tables were recorded with the previous recipe (no weight decay, layer 1's stock BatchNorm) in bf16
# on an AVX-512 CPU with native bf16; PINNED repeats that recipe, so on a fresh clone they re-render from the recorded runs (no training),
# and on another machine they retrain exactly that recipe (bf16 is emulated, and slow, on CPUs without it).
PINNED := --weight-decay 0 --precision bf16 --no-first-bn-from-patches
LAYER_CHOICES := s6 s6-no-bn s6-no-dropout s6-dropout-0.25 s6-dropout-every-conv s6-no-1x1 s6-two-3x3 \
                 s6-gap s6-pool-after-1x1 s6-no-augment s6-step-lr

# the reference net, default recipe (15 epochs), seeds 0 1 2 -> results/reference.md
evidence-s6: data
	$(BIN)/s6lab compare --model s6 --epochs 15 --seed 0 1 2 $(PINNED) --results-dir results --name reference --quiet

# one variant per layer choice, 10 epochs, seeds 0 1 -> results/layer-choices.md
evidence-variants: data
	$(BIN)/s6lab compare --model $(LAYER_CHOICES) --epochs 10 --seed 0 1 $(PINNED) --results-dir results --name layer-choices --quiet

# the compact nets, 15 epochs, seeds 0 1 2 -> results/small-nets.md
evidence-small: data
	$(BIN)/s6lab compare --model s6 s6-8k s6-5k --epochs 15 --seed 0 1 2 $(PINNED) --results-dir results --name small-nets --quiet

# training throughput against the typical DataLoader loop -> benchmarks/results/throughput.md
bench: data
	$(BIN)/python benchmarks/throughput.py --out benchmarks/results/throughput.md

# this machine's class as a file-name part: avx2-no-bf16, avx512-bf16, ... (make 4.3's $(shell) gets no exports)
CLASS = $(shell $(PREVIEW_ENV) $(BIN)/python -c "import re; from s6lab.hardware import machine_info; \
  print('-'.join(re.findall('[a-z0-9]+', machine_info().machine_class.lower())))")

# the effect of each speed lever -> benchmarks/results/levers.md on AVX-512 with bf16 (where it was first
# recorded), levers-CLASS.md on another machine class (levers-avx2-no-bf16.md)
bench-levers: data
	$(BIN)/python benchmarks/levers.py --out benchmarks/results/levers$(if $(filter avx512-bf16,$(CLASS)),,-$(CLASS)).md

# the fusion levers for the memory-bound BatchNorm/ReLU/pool passes (issue 18 part 2), beside the defaults only;
# 15 rounds: their gains are a few per cent, and one 7-round run put a 1.05x lever at 1.17x
# -> benchmarks/results/fusion-CLASS.md
bench-fusion: data
	$(BIN)/python benchmarks/levers.py --one-off "BatchNorm+ReLU" "relu_after_pool" "patch statistics" "channels or fewer" --rounds 15 --out benchmarks/results/fusion-$(CLASS).md

# where the default training step's time goes (torch.profiler over fit, grouped by kind of work)
# -> benchmarks/results/profile-CLASS.md
bench-profile: data
	$(BIN)/python benchmarks/step_profile.py

# each of the reference net's BatchNorm kernels alone, channels-last against channels-first (why small_bn_nchw was
# tried) -> benchmarks/results/bn-layout-CLASS.md
bench-bn-layout: $(STAMP)
	$(BIN)/python benchmarks/bn_layout.py

# the same, plus 15-epoch accuracy-parity runs (seeds 0 1 2) of the levers that change numerics -> levers-full.md
bench-levers-full: data
	$(BIN)/python benchmarks/levers.py --full --out benchmarks/results/levers-full.md

# the warm-up fraction over four more seeds (3-6): default 20% against 10% -> warmup-seeds.md
bench-warmup-seeds: data
	$(BIN)/python benchmarks/levers.py --parity-only --rows defaults "warm-up 10%" --seeds 3 4 5 6 --out benchmarks/results/warmup-seeds.md

# the recipe with margin (issue: every machine, every seed). Run directories accumulate under results/recipe/runs
# (config.json + history.json committed), so each target resumes and never trains a finished run twice;
# bf16 rows train only on CPUs with native bf16 and show the runs recorded elsewhere.
# with PREVIEW=avx2 (recipe-confirm-patch-statistics only) the runs and the table go to their own -avx2-preview names
PREVIEWED := $(if $(PREVIEW),-$(PREVIEW)-preview)
RECIPE := $(BIN)/python benchmarks/recipe.py --out results/recipe$(PREVIEWED)
# screen: every candidate row, seeds 0 1 2, fp32 and bf16 -> results/recipe-screen.md
recipe-screen: data
	$(RECIPE) --rows all --seeds 0 1 2 --table results/recipe-screen.md
# the time-to-99.4% candidates (4-6 epochs), fp32: a table of the runs recorded so far -> results/recipe-speedrun.md
# (this target trains nothing; train a row with: python benchmarks/recipe.py --rows "6 epochs, batch 128, lr 0.1" --seeds ...)
# and the rows screened in bf16 (on AVX-512 with bf16, sessions 14-15) -> results/recipe-speedrun-bf16.md
recipe-speedrun: data
	$(RECIPE) --rows speedrun --seeds 0 1 2 3 4 5 6 7 8 9 --precision fp32 --no-train --table results/recipe-speedrun.md
	$(RECIPE) --rows "6 epochs, batch 256 (the first" "6 epochs, batch 256, lr 0.2" "speedrun: 6 epochs, batch 128, lr 0.2" \
	  "6 epochs, batch 128, lr 0.1, label" "6 epochs, batch 128, lr 0.1, rotation" \
	  "6 epochs, batch 128, lr 0.2, label" "5 epochs, batch 128, lr 0.2, layer" \
	  "5 epochs, batch 128, lr 0.2, rotation 5, shift 0.05, layer" --seeds 0 1 2 3 4 5 6 7 8 9 \
	  --precision bf16 --no-train --table results/recipe-speedrun-bf16.md
# confirm: the chosen recipe with layer 1's stock BatchNorm (the default until session 16), seeds 0-9, fp32 and
# bf16 -> results/recipe-confirm.md
recipe-confirm: data
	$(RECIPE) --rows "wd 5e-4, 18 epochs" --seeds 0 1 2 3 4 5 6 7 8 9 --table results/recipe-confirm.md
# today's default: the same with layer 1's BatchNorm from patch statistics (on by default on CPUs), seeds 0-9,
# fp32 and bf16 -> results/recipe-confirm-patch-statistics.md
recipe-confirm-patch-statistics: data
	$(RECIPE) --rows "layer 1's BatchNorm from patch statistics (18" --seeds 0 1 2 3 4 5 6 7 8 9 \
	  --table results/recipe-confirm-patch-statistics$(PREVIEWED).md

# throughput quiet and with a core taken: OpenMP's default, a fixed PASSIVE team, one thread, and s6lab's default
# (following the load) -> benchmarks/results/load.md on AVX2 without bf16 (where it was first recorded),
# load-CLASS.md on another class (load-avx512-bf16.md)
bench-load: data
	$(BIN)/python benchmarks/load.py --out benchmarks/results/load$(if $(filter avx2-no-bf16,$(CLASS)),,-$(CLASS)).md

# the same with GNU OpenMP's spin count between PASSIVE (0) and the default (300,000) -> load-spincount-CLASS.md
bench-load-spincount: data
	$(BIN)/python benchmarks/load.py --spincount 3000 30000 --out benchmarks/results/load-spincount-$(CLASS).md

# one process on every core against one single-thread process per core (DDP, gloo), quiet and loaded
# (issue 18: a measured lever) -> benchmarks/results/data-parallel-CLASS.md
bench-data-parallel: data
	$(BIN)/python benchmarks/data_parallel.py

# a variants x seeds grid serial, N jobs x 1 thread and on a local Ray -> benchmarks/results/scaling.md
bench-scaling: data
	$(BIN)/python benchmarks/scaling.py

# what to expect per machine class: measure this machine, replace its class's row -> results/machines.md
machines: data
	$(BIN)/python benchmarks/machines.py

# time to 99.4% on this machine class: the s6-speedrun preset (the default OneCycle in 6 epochs at batch 128, seeds 0-4)
# against the faster typical loop (seed 0), with the throughput of both, in one run
# -> benchmarks/results/speedrun-CLASS.md
# (make bench-speedrun SPEEDRUN=s6-speedrun-bf16: that preset -> benchmarks/results/speedrun-bf16-CLASS.md)
SPEEDRUN ?= s6-speedrun
bench-speedrun: data
	$(BIN)/python benchmarks/throughput.py --full --recipe $(SPEEDRUN) --seeds 0 1 2 3 4 \
	  --out benchmarks/results/speedrun$(subst -s6-speedrun,,-$(SPEEDRUN))-$(CLASS).md

# wall-clock time to 99.4%: typical loop (seed 0) against s6lab (seeds 0 1 2) -> throughput-full.md
bench-full: data
	$(BIN)/python benchmarks/throughput.py --full --seeds 0 1 2 --out benchmarks/results/throughput-full.md

evidence: evidence-s6 bench evidence-small evidence-variants bench-levers bench-full bench-levers-full bench-warmup-seeds

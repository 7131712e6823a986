# One target per thing people do. Every target installs the environment on first use.
VENV        ?= .venv
PYTHON      ?= python3
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed
# torch comes first so that pip resolves the wheel you want (override for your CUDA / CPU build).
TORCH_SPEC  ?= torch==2.14.1 torchvision==0.29.1
SWEEP       ?= outputs/sweeps/mini_table
# Launcher of the table targets: parallel (joblib; one 1-thread job per core, TRED_JOBS=N for N) or
# basic (one job at a time). The CPU tables fix 1 thread per run (results depend on the thread count).
LAUNCHER    ?= parallel
export HF_HUB_OFFLINE ?= 1
# The table targets log the table to W&B (offline) too and print the `wandb sync` command;
# TABLE_WANDB= (empty) turns that off (and logger=csv in the sweep: pass it through ARGS).
TABLE_WANDB ?= --wandb
ARGS        ?=
# The Flowers-102 benchmark (README, "The Flowers-102 benchmark"). Data: $(FLOWERS_ROOT) when set,
# else $$TRED_DATA/flowers102, else ./data/flowers102; downloaded there when it is not complete.
FLOWERS_ROOT        ?=
FLOWERS_DATA        := dataset.download=true $(if $(FLOWERS_ROOT),dataset.root=$(FLOWERS_ROOT))
FLOWERS_SWEEP       ?= outputs/sweeps/flowers_table
FLOWERS_10_SWEEP    ?= outputs/sweeps/flowers_table_10
TUNE_FLOWERS_SWEEP  ?= outputs/sweeps/tune_flowers
FLOWERS_TUNED       ?= configs/tuned/flowers102.yaml
TUNE_EMBEDDED_SWEEP ?= outputs/sweeps/tune_mini_table
EMBEDDED_TUNED      ?= configs/tuned/mini_table.yaml

.PHONY: install constraints test test-slow verify reproduce-table table sweep-status bench clean flowers-table flowers-table-10 tune-flowers tune-embedded

install: $(STAMP)

# Pin what is installed now (after an upgrade) as the versions `make install` reproduces.
constraints: $(STAMP)
	{ sed -n '/^#/p' constraints.txt; $(PY) -m pip freeze --exclude-editable | grep -viE '^(torch|torchvision|triton|nvidia-|cuda-)'; } > constraints.txt.new && mv constraints.txt.new constraints.txt

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# Three short runs compared bit for bit with the values the README's tables' machine recorded
# (scripts/verify_expected.json): run it first; exit 1 on a mismatch.
verify: $(STAMP)
	$(PY) scripts/verify.py

# Finished runs are skipped, so this resumes an interrupted sweep; the table is built even when
# some runs failed (they show as missing), then the sweep's failure status is returned.
reproduce-table: $(STAMP)
	$(PY) scripts/train.py -m experiment=mini_table hydra/launcher=$(LAUNCHER) hydra.sweep.dir=$(SWEEP) $(ARGS); \
	status=$$?; $(PY) scripts/make_table.py $(SWEEP) $(TABLE_WANDB) && exit $$status

# The Flowers-102 table at 5 training images per class, with the weights in $(FLOWERS_TUNED).
flowers-table: $(STAMP)
	$(PY) scripts/train.py -m experiment=flowers_table hydra/launcher=$(LAUNCHER) hydra.sweep.dir=$(FLOWERS_SWEEP) $(FLOWERS_DATA) $(ARGS); \
	status=$$?; $(PY) scripts/make_table.py $(FLOWERS_SWEEP) $(TABLE_WANDB) && exit $$status

# The same at 10 per class (its own target: both budgets do not fit one 90-minute budget on 2 cores).
flowers-table-10: $(STAMP)
	$(PY) scripts/train.py -m experiment=flowers_table_10 hydra/launcher=$(LAUNCHER) hydra.sweep.dir=$(FLOWERS_10_SWEEP) $(FLOWERS_DATA) $(ARGS); \
	status=$$?; $(PY) scripts/make_table.py $(FLOWERS_10_SWEEP) $(TABLE_WANDB) && exit $$status

# The same for the embedded benchmark: writes $(EMBEDDED_TUNED), which `make reproduce-table` reads.
tune-embedded: $(STAMP)
	$(PY) scripts/train.py -m experiment=tune_mini_table hydra/launcher=$(LAUNCHER) hydra.sweep.dir=$(TUNE_EMBEDDED_SWEEP) $(ARGS) && \
	$(PY) scripts/tune_summary.py $(TUNE_EMBEDDED_SWEEP) --write $(EMBEDDED_TUNED)

# Every method's weight on held-out training data; writes $(FLOWERS_TUNED), which the tables read.
tune-flowers: $(STAMP)
	$(PY) scripts/train.py -m experiment=tune_flowers hydra/launcher=$(LAUNCHER) hydra.sweep.dir=$(TUNE_FLOWERS_SWEEP) $(FLOWERS_DATA) $(ARGS) && \
	$(PY) scripts/tune_summary.py $(TUNE_FLOWERS_SWEEP) --write $(FLOWERS_TUNED)

table: $(STAMP)
	$(PY) scripts/make_table.py $(SWEEP)

# Completed / running / failed / interrupted / not started runs of a sweep (also while it runs),
# the failures' reasons and an ETA; jobs in parallel from TRED_JOBS (default 1).
sweep-status: $(STAMP)
	$(PY) scripts/sweep_status.py $(SWEEP)

bench: $(STAMP)
	$(PY) scripts/bench.py

clean:
	rm -rf $(VENV) .pytest_cache

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
# The benchmark protocol on any image dataset (scripts/benchmark.py, docs/results.md "The
# protocol"): `make benchmark DATA=/path/to/images [DATASET=image_folder] [BUDGETS=5,10] [SEEDS=0-4]`
# tunes every row on held-out training images at each budget, then runs the tables; everything
# goes to outputs/benchmark/<the folder's name>/. BENCH_ARGS: more options of the script.
DATA        ?=
DATASET     ?= image_folder
BUDGETS     ?= 5,10
SEEDS       ?= 0-4
BENCH_ARGS  ?=
BENCH       = $(PY) scripts/benchmark.py --launcher $(LAUNCHER) $(TABLE_WANDB)
# The Flowers-102 benchmark (docs/results.md, "Flowers-102"). Data: $(FLOWERS_ROOT) when set,
# else $$TRED_DATA/flowers102, else ./data/flowers102; downloaded there when it is not complete.
FLOWERS_ROOT        ?=
FLOWERS_DATA        := dataset.download=true $(if $(FLOWERS_ROOT),dataset.root=$(FLOWERS_ROOT))
FLOWERS_BENCH       = $(BENCH) --dataset flowers102 --label flowers102 --seeds $(SEEDS) --set dataset.download=true \
                      $(if $(FLOWERS_ROOT),--root $(FLOWERS_ROOT)) $(BENCH_ARGS)
FLOWERS_OUT         := outputs/benchmark/flowers102
TUNE_FLOWERS_SWEEP  ?= outputs/sweeps/tune_flowers
# The weights, one file per step: the first 5-per-class tuning; the same with the rows it chose at
# an edge of its grid re-tuned (the 5-per-class table's); 10 per class (the 10-per-class table's).
FLOWERS_FIRST       ?= configs/tuned/flowers102_5pc_first.yaml
FLOWERS_TUNED       ?= configs/tuned/flowers102.yaml
FLOWERS_TUNED_10    ?= configs/tuned/flowers102_10pc.yaml
FLOWERS_EDGE_ROWS   := finetune,at,bss,tred_max_mmd_min_mi
TUNE_EMBEDDED_SWEEP ?= outputs/sweeps/tune_mini_table
EMBEDDED_TUNED      ?= configs/tuned/mini_table.yaml

.PHONY: install constraints lint test test-slow verify reproduce-table table sweep-status bench clean benchmark flowers-table flowers-table-10 tune-flowers tune-flowers-edges tune-flowers-10 tune-embedded

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

lint: $(STAMP)
	$(PY) -m ruff check .

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

benchmark: $(STAMP)
	$(BENCH) --dataset $(DATASET) $(if $(DATA),--root $(DATA)) --budgets $(BUDGETS) --seeds $(SEEDS) $(BENCH_ARGS)

# The protocol's steps for Flowers-102 (scripts/benchmark.py; docs/results.md, "Flowers-102"), each
# a target, in the order they ran: tune-flowers, tune-flowers-edges, flowers-table, tune-flowers-10,
# flowers-table-10. The tables read the committed weights. Output: $(FLOWERS_OUT)/.
flowers-table: $(STAMP)
	$(FLOWERS_BENCH) --budgets 5 --tuned 5=$(FLOWERS_TUNED)

flowers-table-10: $(STAMP)
	$(FLOWERS_BENCH) --budgets 10 --tuned 10=$(FLOWERS_TUNED_10)

# The first tuning's edge rows ($(FLOWERS_EDGE_ROWS)) again at 5 per class, x0.1, 1, 10 around
# its weights and beyond the edges; writes $(FLOWERS_TUNED).
tune-flowers-edges: $(STAMP)
	$(FLOWERS_BENCH) --budgets 5 --retune-edges 5=$(FLOWERS_FIRST) --rows $(FLOWERS_EDGE_ROWS) --tune-only && \
	cp $(FLOWERS_OUT)/configs/tuned/flowers102_5pc.yaml $(FLOWERS_TUNED)

# Every row at 10 per class, x0.1, 1, 10 around the first tuning's weights (the centre the committed
# 10-per-class tuning had: it ran before the edge rows were re-tuned) and beyond the edges; writes
# $(FLOWERS_TUNED_10).
tune-flowers-10: $(STAMP)
	$(FLOWERS_BENCH) --budgets 10 --tuned 5=$(FLOWERS_FIRST) --tune-only && \
	cp $(FLOWERS_OUT)/configs/tuned/flowers102_10pc.yaml $(FLOWERS_TUNED_10)

# The same for the embedded benchmark: writes $(EMBEDDED_TUNED), which `make reproduce-table` reads.
tune-embedded: $(STAMP)
	$(PY) scripts/train.py -m experiment=tune_mini_table hydra/launcher=$(LAUNCHER) hydra.sweep.dir=$(TUNE_EMBEDDED_SWEEP) $(ARGS) && \
	$(PY) scripts/tune_summary.py $(TUNE_EMBEDDED_SWEEP) --write $(EMBEDDED_TUNED)

# Every method's weight at 5 per class on held-out training data (the first tuning, native kernels,
# no rounds beyond the edges); writes $(FLOWERS_FIRST).
tune-flowers: $(STAMP)
	$(PY) scripts/train.py -m experiment=tune_flowers hydra/launcher=$(LAUNCHER) hydra.sweep.dir=$(TUNE_FLOWERS_SWEEP) $(FLOWERS_DATA) $(ARGS) && \
	$(PY) scripts/tune_summary.py $(TUNE_FLOWERS_SWEEP) --write $(FLOWERS_FIRST)

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

# One target per thing people do. Every target installs the environment on first use.
VENV        ?= .venv
PYTHON      ?= python3
PY          := $(VENV)/bin/python
STAMP       := $(VENV)/.installed
# torch comes first so that pip resolves the wheel you want (override for your CUDA / CPU build).
TORCH_SPEC  ?= torch==2.14.1 torchvision==0.29.1
SWEEP       ?= outputs/sweeps/mini_table
# Launcher of `make reproduce-table`: parallel (joblib; TRED_JOBS=2 jobs x 1 thread: measured ~1.2-1.4x the
# throughput of 1 job x 2 threads on a 2-core CPU) or basic (one job at a time).
LAUNCHER    ?= parallel
export HF_HUB_OFFLINE ?= 1

.PHONY: install test test-slow reproduce-table table bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# Finished runs are skipped, so this resumes an interrupted sweep; the table is built even when
# some runs failed (they show as missing), then the sweep's failure status is returned.
reproduce-table: $(STAMP)
	$(PY) scripts/train.py -m experiment=mini_table hydra/launcher=$(LAUNCHER) hydra.sweep.dir=$(SWEEP); \
	status=$$?; $(PY) scripts/make_table.py $(SWEEP) && exit $$status

table: $(STAMP)
	$(PY) scripts/make_table.py $(SWEEP)

bench: $(STAMP)
	$(PY) scripts/bench.py

clean:
	rm -rf $(VENV) .pytest_cache

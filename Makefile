# Quick start: `make demo` and `make test`. Everything installs into .venv on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sentinel-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PYTHONUNBUFFERED := 1

.PHONY: install demo test bench clean

install: $(STAMP)  ## create .venv (if missing) and install the project with dev extras (idempotent)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing sentinel-stream and its dependencies into $(VENV) (first run downloads torch: a few minutes)"
	$(PY) -m pip install --progress-bar off -q -e '.[dev]' 2>&1 | grep -v "is ignored: it is neither" || true
	@$(PY) -c "import faust, torch, open_clip, diffusers, chdb, clickhouse_connect" || (echo "install failed"; exit 1)
	@touch $@

demo: install  ## run the whole pipeline on the embedded stack and print the benchmark
	$(VENV)/bin/sentinel demo

test: install  ## run the test suite (starts the real embedded broker, Faust worker and chDB)
	$(PY) -m pytest -q -ra

bench: install  ## benchmarks: print measured ratios, write bench/results/*.json + *.md (never part of `make test`); BENCH_ARGS=--quick for a short run of the new ones
	$(PY) bench/digest.py
	$(PY) bench/scoring.py $(BENCH_ARGS)
	$(PY) bench/scoring.py --arch ViT-B-32 --worker-threads 2 --budget-s 600 $(BENCH_ARGS)
	$(PY) bench/metadata_path.py $(BENCH_ARGS)
	$(PY) bench/memory.py $(BENCH_ARGS)
	$(PY) bench/clickhouse.py
	$(PY) bench/broker_recovery.py
	$(PY) bench/replay.py $(BENCH_ARGS)
	$(PY) bench/report_render.py

clean:
	rm -rf .sentinel sentinel-demo-report.html .pytest_cache

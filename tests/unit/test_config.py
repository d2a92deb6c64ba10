from __future__ import annotations

from pathlib import Path

import pytest

from rag_ingest.config import ConfigError, load_settings, parse_settings

MINIMAL = "sources:\n  - name: docs\n    location: corpus\n"


def test_minimal_file_gets_defaults_and_resolves_paths_against_its_folder(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, MINIMAL))
    assert settings.store.kind == "lancedb"
    assert settings.embedding.model_path == "packaged:all-MiniLM-L6-v2"
    assert settings.source_location(settings.sources[0]) == str(tmp_path / "corpus")
    assert settings.store_path == str(tmp_path / ".rag_ingest" / "lancedb")
    assert settings.sources[0].dag_id == "rag_ingest__docs"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rag_ingest.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "store:\n  kind: redis\n",
            "store.kind: Input should be 'lancedb' or 'mongodb' (got 'redis')",
        ),
        (
            "chunking:\n  max_tokens: -5\n",
            "chunking.max_tokens: Input should be greater than 0 (got -5)",
        ),
        (
            "chunking:\n  max_tokens: 100\n  overlap_tokens: 100\n",
            "chunking: overlap_tokens (100) must be smaller than max_tokens (100)",
        ),
        (
            "embedding:\n  device: tpu\n",
            "embedding.device: Input should be 'auto', 'cpu', 'cuda' or 'mps'",
        ),
        ("store:\n  knd: lancedb\n", "store.knd: Extra inputs are not permitted"),
    ],
)
def test_bad_values_name_the_field_and_allowed_values(
    tmp_path: Path, extra: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(_write(tmp_path, MINIMAL + extra))
    message = str(error.value)
    assert expected in message
    assert "\n" not in message


def test_bad_source_mode_and_name(tmp_path: Path) -> None:
    text = "sources:\n  - name: Bad-Name\n    location: x\n    mode: hourly\n"
    with pytest.raises(ConfigError) as error:
        load_settings(_write(tmp_path, text))
    message = str(error.value)
    assert "sources[0].name: must be lower-case" in message
    assert "sources[0].mode: Input should be 'snapshot' or 'partitioned' (got 'hourly')" in message


def test_missing_source_folder_is_reported_when_paths_are_checked(tmp_path: Path) -> None:
    path = _write(tmp_path, MINIMAL)
    load_settings(path)  # schema alone does not stat folders (DAG parsing stays cheap)
    with pytest.raises(
        ConfigError, match=r"sources\[0\]\.location: folder .*corpus.* does not exist"
    ):
        load_settings(path, check_paths=True)
    (tmp_path / "corpus").mkdir()
    load_settings(path, check_paths=True)


def test_missing_required_fields_and_duplicates(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sources\[0\]\.location: Field required"):
        load_settings(_write(tmp_path, "sources:\n  - name: docs\n"))
    dup = MINIMAL + "  - name: docs\n    location: other\n"
    with pytest.raises(ConfigError, match="source names must be unique, repeated: docs"):
        load_settings(_write(tmp_path, dup))


def test_unreadable_inputs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(_write(tmp_path, "sources: [\n"))
    with pytest.raises(ConfigError, match="expected a mapping"):
        parse_settings(["a"], tmp_path)


def test_env_var_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, MINIMAL)
    monkeypatch.setenv("RAG_INGEST_CONFIG", str(path))
    assert load_settings().sources[0].name == "docs"


def test_unknown_source_lists_the_known_ones(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, MINIMAL))
    with pytest.raises(ConfigError, match="unknown source 'wiki'; configured sources: docs"):
        settings.source("wiki")


def test_project_configuration_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    settings = load_settings(root / "rag_ingest.yaml", check_paths=True)
    assert [s.name for s in settings.sources] == ["docs"]


def test_model_token_limit_comes_from_the_model_folder() -> None:
    from rag_ingest.config import PACKAGED_MODEL
    from rag_ingest.embedding import model_token_limit

    assert model_token_limit(PACKAGED_MODEL) == 254
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model_token_limit("/no/such/model")


def test_a_templated_location_renders_per_run_date_and_keys_count_from_its_root(
    tmp_path: Path,
) -> None:
    from rag_ingest.config import Settings

    settings = Settings.model_validate(
        {
            "sources": [{"name": "daily", "location": "drops/{{ ds }}", "mode": "partitioned"}],
            "base_dir": str(tmp_path),
        }
    )
    (source,) = settings.sources
    assert source.is_templated
    assert settings.source_location(source, "2026-01-02") == str(tmp_path / "drops" / "2026-01-02")
    assert settings.source_root(source) == str(tmp_path / "drops")
    with pytest.raises(ConfigError, match="templated, so a run needs a logical date"):
        settings.source_location(source)
    nodash = source.model_copy(update={"location": "drops/{{ ds_nodash }}.d"})
    assert settings.source_location(nodash, "2026-01-02").endswith("drops/20260102.d")
    unknown = source.model_copy(update={"location": "drops/{{ hour }}"})
    with pytest.raises(ConfigError, match="'hour' is undefined"):
        settings.source_location(unknown, "2026-01-02")

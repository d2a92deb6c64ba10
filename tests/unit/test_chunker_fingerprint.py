"""The chunker fingerprint covers every chunking setting, with nobody listing them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from rag_ingest.chunking import CHUNKER_VERSION, chunker_fingerprint
from rag_ingest.config import ChunkingConfig, Settings
from rag_ingest.identity import fingerprint

SOURCES = [{"name": "docs", "location": "docs"}]


def _settings(chunking: dict[str, Any], model_id: str | None = None) -> Settings:
    data: dict[str, Any] = {"sources": SOURCES, "chunking": chunking}
    if model_id:
        data["embedding"] = {"model_id": model_id}
    return Settings.model_validate(data)


def _changed(name: str, value: Any) -> Any:
    """Another valid value for a chunking setting, whatever its type."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "-other"
    if isinstance(value, BaseModel):
        raise AssertionError(f"chunking.{name}: teach this test to change a nested setting")
    raise AssertionError(f"chunking.{name}: teach this test to change a {type(value).__name__}")


def test_changing_any_chunking_setting_changes_the_fingerprint() -> None:
    base = _settings({})
    defaults = base.chunking.model_dump()
    assert set(defaults) == set(ChunkingConfig.model_fields)
    for name, value in defaults.items():
        # Overlap stays below the size: raise the size first when the overlap grows.
        changed = {name: _changed(name, value)}
        if name == "overlap_tokens":
            changed["max_tokens"] = defaults["max_tokens"]
        other = _settings(changed)
        assert chunker_fingerprint(other) != chunker_fingerprint(base), (
            f"chunking.{name} changed but the fingerprint did not: stored chunks would "
            "never be re-chunked"
        )


def test_the_tokenizer_is_part_of_the_fingerprint() -> None:
    assert chunker_fingerprint(_settings({}, "other/model")) != chunker_fingerprint(_settings({}))


def test_the_fingerprint_of_todays_settings_is_the_one_stored_chunks_carry() -> None:
    """Moving the fingerprint into the chunking module must not re-chunk every store."""
    settings = _settings({"max_tokens": 200, "overlap_tokens": 20, "context_lines": False})
    stored_before = fingerprint(
        {
            "version": CHUNKER_VERSION,
            "max_tokens": 200,
            "overlap_tokens": 20,
            "tokenizer": settings.embedding.model_id,
            "context_lines": False,
        }
    )
    assert chunker_fingerprint(settings) == stored_before

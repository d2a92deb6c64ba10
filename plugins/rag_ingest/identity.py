"""Deterministic identity: document ids, chunk ids, content hashes, fingerprints.

Ids are hex digests so they are safe in file names, SQL filters and Mongo
`_id`s whatever the source path or record key contains.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

_SEP = "\x1f"  # unit separator: cannot occur in a path, so fields never run together


def _digest(*parts: str, size: int = 32) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(_SEP.encode())
    return h.hexdigest()[:size]


def doc_id(source: str, key: str) -> str:
    """Stable per (source, relative path or record key)."""
    return _digest("doc", source, key)


def content_hash(text: str) -> str:
    """Hash of parsed text: equal hashes mean an unchanged document."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_ids(document_id: str, texts: Iterable[str], labels: Iterable[str] = ()) -> list[str]:
    """Ids from the document id, each chunk's own text and the access labels.

    A chunk whose text did not change keeps its id when text around it
    changes. Identical texts within one document are told apart by their
    occurrence number, which also survives edits elsewhere in the document.
    Labels are part of the id so that a label change rewrites the chunk
    (its vector is reused: the text is the same).
    """
    acl = ",".join(sorted(labels))
    seen: dict[str, int] = {}
    ids = []
    for text in texts:
        occurrence = seen.get(text, 0)
        seen[text] = occurrence + 1
        parts = ("chunk", document_id, text, str(occurrence)) + (("acl", acl) if acl else ())
        ids.append(_digest(*parts))
    return ids


def fingerprint(settings: Mapping[str, Any]) -> str:
    """Short, order-independent hash of a settings mapping (e.g. the chunker's)."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return _digest("settings", canonical, size=16)

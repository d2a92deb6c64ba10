"""Files a document includes (`.. include::`, `--8<--`, `{* path *}`), read from inside its source.

An include is resolved only when its target lies inside the source's own
location: a document can never pull in a file from elsewhere on the worker
(`/etc/passwd`, another source's folder, a symlink out). A target outside,
missing, too large, or nested deeper than `MAX_DEPTH` is dropped, and the
document's parse notes count it, so the run report can say how many were.
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field

from rag_ingest.parsing.base import ParseError, decode_text

MAX_DEPTH = 3  # an include inside an included file is read, up to this depth
MAX_INCLUDE_BYTES = 1_000_000


@dataclass
class Includes:
    """The include reader of one document: what it read and what it dropped."""

    root: str | None  # the source's location; None: every include is dropped
    document: str  # the including document's location
    read: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def text(self, target: str, depth: int = 1) -> str | None:
        """The target's text, or None, counted as dropped.

        A relative target is looked up from the including document's folder,
        then from each folder above it up to the root: tools resolve includes
        from their configuration's folder (MkDocs, pymdownx.snippets), which
        is one of those.
        """
        found = self._resolve(target) if depth <= MAX_DEPTH else None
        if found is None:
            self.dropped.append(target)
            return None
        from rag_ingest.sources import read_bytes

        try:
            text, _ = decode_text(read_bytes(found, MAX_INCLUDE_BYTES))
        except (OSError, ParseError):
            self.dropped.append(target)
            return None
        self.read.append(found)
        return text

    def _resolve(self, target: str) -> str | None:
        if self.root is None or not target or "\x00" in target or "://" in target:
            return None
        scheme, root = _split(self.root)
        _, document = _split(self.document)
        root = posixpath.normpath(root)
        for base in _folders_up_to(posixpath.dirname(document), root):
            candidate = posixpath.normpath(posixpath.join(base, target.lstrip("/")))
            if not _within(candidate, root):
                continue
            if scheme:  # an object store: no links to follow out
                return f"{scheme}://{candidate}"
            if os.path.isfile(candidate) and _within(
                os.path.realpath(candidate), os.path.realpath(root)
            ):
                return candidate
        return None

    def notes(self) -> dict[str, object]:
        """What the parse notes record: the counts, and the dropped targets (a few)."""
        if not self.read and not self.dropped:
            return {}
        notes: dict[str, object] = {"includes_read": len(self.read)}
        if self.dropped:
            notes["includes_dropped"] = len(self.dropped)
            notes["includes_dropped_targets"] = self.dropped[:10]
        return notes


def _folders_up_to(folder: str, root: str) -> list[str]:
    folders = []
    while _within(folder, root):
        folders.append(folder)
        if folder == root:
            return folders
        folder = posixpath.dirname(folder)
    return folders or [root]


def _split(location: str) -> tuple[str, str]:
    """(scheme, path); no scheme for a local path or a file:// URI."""
    if location.startswith("file://") or "://" not in location:
        return "", location.removeprefix("file://")
    scheme, _, path = location.partition("://")
    return scheme, path


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")

"""Listing a source with fsspec: what files exist, their size and modified time."""

from __future__ import annotations

import glob
import os
import posixpath
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import fsspec
from fsspec.core import url_to_fs
from fsspec.utils import glob_translate

from rag_ingest.parsing.base import ParseError, escaped, is_unicode

SYMLINK_REFUSED = "a symlink: links are not followed, so nothing outside the source is read"


@dataclass(frozen=True)
class SourceFile:
    uri: str  # what a person can open: the full path or URL
    relative_path: str  # key inside the source root; the doc id derives from it
    size: int
    modified_at: datetime | None
    refused: str | None = None  # why it will not be read (a symlink); quarantined as such
    refused_reason: str = "not_followed"  # the quarantine reason of a refused file


def _modified(info: dict[str, Any]) -> datetime | None:
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, tz=UTC)
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            continue
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def list_files(location: str, pattern: str, with_refused: bool = False) -> list[SourceFile]:
    """Every file under `location` matching `pattern`, sorted by relative path.

    Symlinks and paths that resolve outside the root are never read: only
    what the glob finds under the root itself is returned. `with_refused`
    also returns symlinks, marked `refused`, so the run can quarantine them.
    """
    fs, root = url_to_fs(location)
    root = root.rstrip("/")
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    local = protocol in ("file", "local")
    found = _local_glob(root, pattern) if local else fs.glob(f"{root}/{pattern}", detail=True)
    files = []
    inside = root + "/"
    for path, info in sorted(found.items()):
        if not path.startswith(inside):
            continue
        relative = path[len(inside) :]
        refused, reason = None, "not_followed"
        if info.get("islink"):
            if not with_refused:
                continue
            refused = SYMLINK_REFUSED
        elif info.get("type") != "file":
            continue
        uri = path if local else f"{protocol}://{path}"
        if not is_unicode(uri):
            # A name in another encoding (Latin-1 bytes): it cannot be stored or shown
            # as text, so it is refused, named with its odd bytes escaped.
            if not with_refused:
                continue
            uri, relative = escaped(uri), escaped(relative)
            refused, reason = "the file name is not valid UTF-8; rename the file", "invalid_name"
        mtime = info.get("mtime")
        files.append(
            SourceFile(
                uri,
                relative,
                int(info.get("size") or 0),
                # Local files (and most fsspec filesystems) give a POSIX time: the fast way.
                datetime.fromtimestamp(mtime, UTC) if isinstance(mtime, float) else _modified(info),
                refused,
                reason,
            )
        )
    return files


def _local_glob(root: str, pattern: str) -> dict[str, dict[str, Any]]:
    """fsspec's glob on a local folder, the same paths with the fields list_files reads,
    at a fraction of the cost (one scandir per folder, no per-file info call):
    the listing is a run's whole cost when nothing changed. Links are listed, never
    followed (as fsspec's local walk)."""
    regex = re.compile(glob_translate(f"{root}/{pattern}"))
    parts = pattern.split("/")
    fixed = next((n for n, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    start = posixpath.join(root, *parts[:fixed]) if fixed else root
    # Without `**` a pattern matches at one depth only: no need to walk deeper.
    depth = None if "**" in pattern else len(parts) - fixed
    found: dict[str, dict[str, Any]] = {}

    def walk(folder: str, level: int) -> None:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return
        for entry in entries:
            if entry.is_symlink():
                if regex.match(entry.path):
                    found[entry.path] = {"islink": True, "type": "other"}
            elif entry.is_dir(follow_symlinks=False):
                if depth is None or level < depth:
                    walk(entry.path, level + 1)
            elif entry.is_file(follow_symlinks=False) and regex.match(entry.path):
                stat = entry.stat(follow_symlinks=False)
                found[entry.path] = {"type": "file", "size": stat.st_size, "mtime": stat.st_mtime}

    if fixed == len(parts):  # no wildcard: one path
        walk(posixpath.dirname(start), len(parts) - 1)
    else:
        walk(start, 1)
    return found


def read_bytes(uri: str, max_bytes: int | None = None) -> bytes:
    """The file's bytes, checked again as it is opened (it may have changed since
    it was listed): a local file that became a symlink is not followed, and no
    file is read past `max_bytes`."""
    if "://" not in uri or uri.startswith("file://"):
        path = uri.removeprefix("file://")
        try:
            descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as error:
            if os.path.islink(path):
                raise ParseError("not_followed", "became a symlink after it was listed") from None
            raise error
        with os.fdopen(descriptor, "rb") as handle:
            data: bytes = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    else:
        with fsspec.open(uri, "rb") as handle:
            data = handle.read() if max_bytes is None else handle.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise ParseError(
            "too_large", f"grew past the limit of {max_bytes} bytes after it was listed"
        )
    return data

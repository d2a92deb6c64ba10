"""The last extraction of a source, reused whole while nothing it read has changed,
and file by file when some of it has.

Parsing is the extract stage's whole cost, and a Spark session's start-up
is most of it on a small source. What extract writes (documents/,
quarantine/, sensitive/) is a pure function of the files listed (their
paths, sizes and modified times), the source's settings, the sensitive-data
settings and the parsing code. So each extraction is kept under
`{staging}/{source}/parse-cache/<location>/` with a key over all of those
(made of the per-file keys below);
a run whose key matches takes the kept output (hard links, no copy) and
parses nothing at all. Any change to any of them, or the `full_resync`
param, parses afresh. A file rewritten with the very same size and modified
time is not seen as changed: the same rule as rsync's and make's.

When the listing did change, the extract job still parses only the files
that changed: every parsed row is kept under `file-rows/` with its file's
*reuse key* (`reuse_key`: the file's uri, size and modified time, the
source's settings, and the fingerprint of the parser code for that file's
format), and a file whose key is found again takes its kept rows. A parser
upgrade changes the fingerprint of the formats whose own module changed
(code shared by every parser changes them all). A document that includes
other files is never reused: what it includes may have changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_ingest.run import RunLayout
from rag_ingest.sources import SourceFile

if TYPE_CHECKING:
    from rag_ingest.config import Settings, SourceConfig

log = logging.getLogger(__name__)

# What an extraction writes into its run folder.
OUTPUTS = RunLayout.EXTRACT_OUTPUTS
_KEY_FILE = "key.json"
_PACKAGE = Path(__file__).resolve().parent
# The code that decides what a file parses to.
_PARSING_CODE = (
    "extract.py", "document_rows.py", "record_rows.py", "sources.py", "sensitive.py",
    "identity.py", "parsing",
)  # fmt: skip


def extract_settings(settings: Settings, source: SourceConfig, location: str) -> dict[str, Any]:
    """What, besides the files and the code, decides what an extraction writes."""
    return {
        "location": location,
        "source": source.model_dump(mode="json"),
        "sensitive": settings.sensitive_data_for(source).model_dump(mode="json"),
    }


def parser_fingerprints() -> dict[str, str]:
    """Per format, a digest of the code that parses it: the shared parsing code
    and the format's own parser module."""
    from rag_ingest.parsing import REGISTRY

    own = {f.name: _own_module(f.parse) for f in REGISTRY}
    own_files = {path for path in own.values() if path is not None}
    shared = hashlib.sha256()
    for name in _PARSING_CODE:
        path = _PACKAGE / name
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            if file not in own_files:
                shared.update(file.relative_to(_PACKAGE).as_posix().encode())
                shared.update(file.read_bytes())
    shared.update((_PACKAGE / "markup.py").read_bytes())
    shared.update(json.dumps(_parser_library_versions()).encode())
    fingerprints = {}
    for name, module in own.items():
        digest = shared.copy()
        digest.update(module.read_bytes() if module is not None else b"records")
        fingerprints[name] = digest.hexdigest()[:16]
    return fingerprints


# The libraries the parsers read with: an upgrade of any re-parses every format
# (which format uses which is not worth tracking for a rare event).
_PARSER_LIBRARIES = (
    "markdown-it-py", "mdit-py-plugins", "docutils", "trafilatura", "lxml", "pypdf",
    "pdfplumber", "pypdfium2", "python-docx", "python-pptx", "openpyxl", "ebooklib",
    "pytesseract", "pillow", "charset-normalizer", "detect-secrets", "phonenumberslite",
)  # fmt: skip


def _parser_library_versions() -> dict[str, str | None]:
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in _PARSER_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _own_module(parse: object) -> Path | None:
    """The file of a format's parser (None for record files: parsing/records.py is shared)."""
    module = getattr(parse, "__module__", None)
    if module is None:
        return None
    return _PACKAGE.parent / (module.replace(".", "/") + ".py")


def reuse_keys(
    files: list[SourceFile], settings_digest: str, fingerprints: dict[str, str]
) -> list[str | None]:
    """The key under which each file's parsed rows are kept (None for a refused file):
    its uri, size and modified time, the settings, and its format's parser fingerprint.
    Computed for every listed file each run, so kept cheap (one hash a file)."""
    from rag_ingest.parsing import format_of, suffix_of

    by_suffix: dict[str, str] = {}
    keys: list[str | None] = []
    for file in files:
        if file.refused:
            keys.append(None)
            continue
        suffix = suffix_of(file.relative_path)
        code = by_suffix.get(suffix)
        if code is None:
            code = by_suffix[suffix] = format_code(
                settings_digest, fingerprints, format_of(file.relative_path)
            )
        stamp = repr(file.modified_at.timestamp()) if file.modified_at else ""
        keys.append(
            hashlib.sha256(f"{file.uri}\x1f{file.size}\x1f{stamp}\x1f{code}".encode()).hexdigest()
        )
    return keys


def format_code(settings_digest: str, fingerprints: dict[str, str], format_name: str | None) -> str:
    """What every row parsed from a file of this format depends on besides the file: the
    settings and the format's parser code (a record's kept row is keyed by it too)."""
    return f"{settings_digest}\x1f{fingerprints.get(format_name or '', 'unknown')}"


def reuse_key(file: SourceFile, settings_digest: str, fingerprints: dict[str, str]) -> str | None:
    """One file's reuse key (reuse_keys)."""
    return reuse_keys([file], settings_digest, fingerprints)[0]


def settings_digest(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def file_rows_dir(folder: Path) -> Path:
    """The parsed rows of every file of the last extraction, by reuse key (beside
    the kept extraction, which `keep` replaces whole)."""
    return folder.with_name(folder.name + "-file-rows")


def kept_keys(rows_dir: Path) -> set[str]:
    """The reuse keys of the kept file rows (empty when none are kept, or unreadable)."""
    import pyarrow.parquet as pq

    if not (rows_dir / "_SUCCESS").exists():
        return set()
    try:
        table = pq.read_table(rows_dir, columns=["reuse_key"])
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        log.warning("not reusing kept file rows in %s: %s", rows_dir, error)
        return set()
    return {key for key in table.column("reuse_key").to_pylist() if key is not None}


def drop_file_rows(folder: Path) -> None:
    """No kept file rows (a source below `parsing.reuse_min_files` keeps none)."""
    shutil.rmtree(file_rows_dir(folder), ignore_errors=True)


def link_file_rows(folder: Path, fresh: Path) -> None:
    """The kept file rows, linked into `fresh` (no copy), for a run to add its own to."""
    shutil.rmtree(fresh, ignore_errors=True)
    _link_tree(file_rows_dir(folder), fresh)


def replace_file_rows(folder: Path, fresh: Path, record_code: str | None = None) -> None:
    """`fresh` becomes the kept file rows, never half of them; `record_code` is what their
    records' digests were made with (rag_ingest.record_rows.RecordReuse.code)."""
    if record_code is not None:
        # Written beside, then renamed: in `fresh` the old one may be a hard link.
        written = fresh / f"{_RECORD_CODE}.new"
        written.write_text(record_code)
        written.replace(fresh / _RECORD_CODE)
    _swap_in(fresh, file_rows_dir(folder))


def kept_record_code(rows_dir: Path) -> str | None:
    """What the kept rows' record digests were made with (None: not known)."""
    try:
        return (rows_dir / _RECORD_CODE).read_text()
    except OSError:
        return None


# Dataset readers (pyarrow, Spark) skip names starting with "_".
_RECORD_CODE = "_RECORD_CODE"


def _swap_in(fresh: Path, target: Path) -> None:
    """`fresh`, written whole beside `target`, renamed into its place. A crash between
    the two renames leaves no kept copy (the next run parses), never half of one."""
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    fresh.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def cache_key(files: list[SourceFile], keys: list[str | None], settings: dict[str, Any]) -> str:
    """The key of one whole extraction: every file's reuse key (listing, settings and
    its format's parser code) and path, the refused files, and the settings."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for file, key in zip(files, keys, strict=True):
        refused = "\x1f".join((file.uri, file.refused or "", file.refused_reason))
        digest.update(f"{file.relative_path}\x1f{key or refused}\n".encode())
    return digest.hexdigest()


def cache_dir(staging_dir: str, source: str, location: str) -> Path:
    """One kept extraction per source location (a templated source: per partition)."""
    return (
        Path(staging_dir)
        / source
        / "parse-cache"
        / hashlib.sha256(location.encode()).hexdigest()[:16]
    )


def _link_tree(source: Path, target: Path) -> None:
    """`source` at `target` by hard links (a copy where links cannot be made)."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link)


def restore(folder: Path, key: str, run_dir: Path) -> dict[str, Any] | None:
    """The kept extraction's counts, with its outputs linked into `run_dir`; None on a miss."""
    key_file = folder / _KEY_FILE
    if not key_file.is_file():
        return None
    kept = json.loads(key_file.read_text())
    if kept.get("key") != key or not all((folder / name).is_dir() for name in OUTPUTS):
        return None
    for name in OUTPUTS:
        shutil.rmtree(run_dir / name, ignore_errors=True)
        _link_tree(folder / name, run_dir / name)
    counts: dict[str, Any] = kept["counts"]
    return counts


def keep(folder: Path, key: str, run_dir: Path, counts: dict[str, Any]) -> None:
    """Keep this run's extraction for the next run (replacing the one kept before).

    Written beside the old one and renamed into place: a crash leaves either
    the old extraction or the new, never half of one.
    """
    fresh = folder.with_name(folder.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(parents=True)
    for name in OUTPUTS:
        _link_tree(run_dir / name, fresh / name)
    (fresh / _KEY_FILE).write_text(json.dumps({"key": key, "counts": counts}))
    _swap_in(fresh, folder)
    log.info("kept this extraction for the next run in %s", folder)


def kept_key(folder: Path) -> str | None:
    """The key of the extraction kept in `folder`, if one is."""
    try:
        key: str = json.loads((folder / _KEY_FILE).read_text())["key"]
    except (OSError, ValueError, KeyError):
        return None
    return key


def holds(folder: Path, run_dir: Path) -> bool:
    """Whether `run_dir`'s extraction is the one kept in `folder`: the same files (hard
    links, made by keep or restore), not merely equal ones. Copies never count."""

    def files(root: Path) -> dict[str, Path]:
        return {
            str(path.relative_to(root)): path
            for name in OUTPUTS
            for path in (root / name).rglob("*")
            if path.is_file()
        }

    try:
        kept, mine = files(folder), files(run_dir)
        return (
            bool(mine)
            and kept.keys() == mine.keys()
            and all(os.path.samefile(kept[name], mine[name]) for name in mine)
        )
    except OSError:
        return False


def read_verdict(folder: Path, gate: str) -> dict[str, Any] | None:
    """What `gate` found on the kept extraction (keep_verdict), if it still applies to it:
    a new extraction replaces the folder, and its verdicts with it."""
    try:
        verdict: dict[str, Any] = json.loads((folder / f"gate-{gate}.json").read_text())
    except (OSError, ValueError):
        return None
    key = kept_key(folder)
    return verdict if key is not None and verdict.get("key") == key else None


def keep_verdict(folder: Path, gate: str, verdict: dict[str, Any]) -> None:
    """Beside the kept extraction: a gate's verdict on it, for runs that reuse it."""
    key = kept_key(folder)
    if key is None:
        return
    target = folder / f"gate-{gate}.json"
    temporary = target.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps({**verdict, "key": key}))
    os.replace(temporary, target)

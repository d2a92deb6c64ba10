"""Data Docs served offline: every CDN script, style and image a real GX page names is
pointed at a local copy, and every local copy is there (fetched by `make venv`)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from rag_ingest import data_docs_assets
from rag_ingest.quality import PACKAGED_SUITES, GateFailed, run_gate
from rag_ingest.quality.suites import build_data_docs_index

PREFIX = "/rag-ingest/assets"
# What a browser loads by itself from a page: scripts, style sheets, images, CSS url()s.
_LOADED = re.compile(
    r"""<script[^>]*\bsrc="([^"]+)"|<link[^>]*\bhref="([^"]+)"|<img[^>]*\bsrc="([^"]+)"|url\(['"]?([^'")]+)"""
)


def loaded_urls(html: str) -> set[str]:
    return {next(g for g in match if g) for match in _LOADED.findall(html)}


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Data Docs pages written by a real gate run that failed: an index and a validation."""
    folder = tmp_path_factory.mktemp("docs")
    frame = pd.DataFrame(
        {
            "doc_id": ["d0", "d1"],
            "format": ["markdown"] * 2,
            "size": [10, 20],
            "text_chars": [0, 5],
            "modified_epoch": [1.7e9, 1.7e9],
        }
    )
    with pytest.raises(GateFailed):
        run_gate(
            "documents",
            frame,
            suites_dir=PACKAGED_SUITES,
            parameters={"allowed_formats": ["markdown"], "max_file_bytes": 100,
                        "latest_modified_epoch": 2e9},
            overrides={},
            data_docs_dir=folder / "data_docs",
            results_dir=folder / "gx",
            evidence_dir=folder / "evidence",
            run_name="r",
        )  # fmt: skip
    build_data_docs_index(folder / "gx", folder / "data_docs")  # as the report task does
    found = sorted((folder / "data_docs").rglob("*.html"))
    assert any(p.name == "index.html" for p in found) and len(found) >= 2
    return found


def test_a_localised_page_loads_nothing_from_the_network(pages: list[Path]) -> None:
    for page in pages:
        original = page.read_text()
        assert any(url.startswith("https://") for url in loaded_urls(original))  # GX's CDNs
        localised = data_docs_assets.localise(original, PREFIX)
        remote = sorted(u for u in loaded_urls(localised) if "://" in u or u.startswith("//"))
        assert "amazonaws.com" not in localised
        assert remote == [], f"{page.name} still loads {remote}"
        assert "integrity=" not in localised


def test_every_local_copy_a_page_names_is_there(pages: list[Path]) -> None:
    root = data_docs_assets.assets_dir()
    assert data_docs_assets.missing(root) == [], "run `rag-ingest assets fetch` (make venv does)"
    for page in pages:
        localised = data_docs_assets.localise(page.read_text(), PREFIX)
        for url in loaded_urls(localised):
            if not url.startswith(PREFIX + "/"):
                continue  # the page's own static/ folder, beside it
            relative = url.removeprefix(PREFIX + "/")
            folder, _, rest = relative.partition("/")
            if folder == data_docs_assets.GX_IMAGES:
                assert (data_docs_assets.gx_images_dir() / rest).is_file(), url
            else:
                assert (root / relative).is_file(), url
    # Font Awesome's style sheet names its fonts by relative path: they are there too.
    fonts = root / data_docs_assets.PACKAGES["@fortawesome/fontawesome-free"].folder / "webfonts"
    assert any(fonts.glob("*.woff2"))


def test_a_tarball_that_is_not_the_pinned_one_is_refused() -> None:
    package = data_docs_assets.PACKAGES["jquery"]
    with pytest.raises(ValueError, match="is not the pinned"):
        data_docs_assets._verified(package, b"not jquery")


def test_only_the_listed_files_are_unpacked_and_never_outside_the_folder() -> None:
    package = data_docs_assets.PACKAGES["@fortawesome/fontawesome-free"]
    assert data_docs_assets._kept(package, "package/css/all.min.css") == "css/all.min.css"
    assert data_docs_assets._kept(package, "package/webfonts/fa-solid-900.woff2")
    assert data_docs_assets._kept(package, "package/js/all.js") is None
    assert data_docs_assets._kept(package, "package/webfonts/../../../etc/passwd") is None

"""Great Expectations Data Docs without the network: their scripts and styles, served locally.

GX writes Data Docs pages that load Bootstrap, bootstrap-table, jQuery, Font
Awesome and Vega from public CDNs; offline (a closed network, an air-gapped
Airflow) they render unstyled and the index table stays empty, since it is
filled by bootstrap-table. `rag-ingest assets fetch` (run by `make venv` and
the Docker image) downloads the exact packages those URLs name from the npm
registry once, checks each tarball against its pinned sha512, and keeps only
the files the pages use. The UI then serves the pages with those URLs
pointed at its own copies (`localise`), so nothing reaches a CDN.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
ASSETS_DIR_ENV = "RAG_INGEST_ASSETS_DIR"
# GX's own images (its logo) come from an S3 bucket; the package holds them.
GX_IMAGES_URL = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
GX_IMAGES = "gx-images"


@dataclass(frozen=True)
class Package:
    """One npm package, pinned by version and by its registry's sha512 integrity."""

    name: str
    version: str
    integrity: str
    keep: tuple[str, ...]  # paths inside the tarball's package/ (a trailing / keeps a folder)

    @property
    def folder(self) -> str:
        return f"{self.name.replace('/', '+')}@{self.version}"

    @property
    def tarball(self) -> str:
        return f"{REGISTRY}/{self.name}/-/{self.name.rsplit('/', 1)[-1]}-{self.version}.tgz"


# The versions GX 1.x's templates name; "@5"-style CDN aliases pinned to their latest 5.x.
PACKAGES = {
    p.name: p
    for p in (
        Package("jquery", "3.7.1", "sha512-m4avr8yL8kmFN8psrbFFFmB/If14iN5o9nw/NgnnM+kybDJpRsAynV2BsfpTYrTRysYUdADVD7CkUUizgkpLfg==", ("dist/jquery.min.js",)),  # noqa: E501
        Package("popper.js", "1.12.9", "sha512-s0EEi9xiSCdqz9lV4IiVH5yIZnDX/U1t0tCjB+0jXx9jW8lrR7kOpVupiUg175ogqVoudpDXHF1p6dKATCHMeg==", ("dist/umd/popper.min.js",)),  # noqa: E501
        Package("bootstrap", "4.3.1", "sha512-rXqOmH1VilAt2DyPzluTi2blhk17bO7ef+zLLPlWvG494pDxcM234pJ8wTc/6R40UWizAIIMgxjvxZg5kmsbag==", ("dist/css/bootstrap.min.css", "dist/js/bootstrap.min.js")),  # noqa: E501
        Package("bootstrap-table", "1.19.1", "sha512-WvV+l1AI/C+zThaKmfHmi/IuayVNB0qdFyEhFx1jyZhO0oLtNJNANkCR3rvJf6Dkh72dsLElxpE/bzK9seEQLA==", ("dist/bootstrap-table.min.css", "dist/bootstrap-table.min.js", "dist/extensions/filter-control/")),  # noqa: E501
        Package("bootstrap-datepicker", "1.9.0", "sha512-9rYYbaVOheGYxjOr/+bJCmRPihfy+LkLSg4fIFMT9Od8WwWB/MB50w0JO1eBgKUMbb7PFHQD5uAfI3ArAxZRXA==", ("dist/css/bootstrap-datepicker.min.css", "dist/js/bootstrap-datepicker.min.js")),  # noqa: E501
        Package("@forevolve/bootstrap-dark", "1.1.0", "sha512-A3ucpEpxPoTVO490lZZCfjPXxv832l7mm1IxX3bXyxvgwnPGXDLyh7dWrphXKO8YBAu3EswbBEu3VSW8NRMW3A==", ("dist/css/bootstrap-prefers-dark.css",)),  # noqa: E501
        Package("@fortawesome/fontawesome-free", "6.6.0", "sha512-60G28ke/sXdtS9KZCpZSHHkCbdsOGEhIUGlwq6yhY74UpTiToIh8np7A8yphhM4BWsvNFtIvLpi4co+h9Mr9Ow==", ("css/all.min.css", "webfonts/")),  # noqa: E501
        Package("vega", "5.33.1", "sha512-1fArfVDUqVbb5z8n+/nVQb+VNBzx8svY6CrsyTK4Ujm4yrd9I1auoKxBAPXLCavY1LcrbHUskQbGUP8gXOzyQw==", ("build/vega.min.js",)),  # noqa: E501
        Package("vega-lite", "5.23.0", "sha512-l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA==", ("build/vega-lite.min.js",)),  # noqa: E501
        Package("vega-embed", "6.29.0", "sha512-PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q==", ("build/vega-embed.min.js",)),  # noqa: E501
    )
}  # fmt: skip

# Each CDN URL the Data Docs templates write -> (package, file inside it).
CDN_FILES = {
    "https://code.jquery.com/jquery-3.7.1.min.js": ("jquery", "dist/jquery.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": (
        "popper.js",
        "dist/umd/popper.min.js",
    ),
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": (
        "bootstrap",
        "dist/css/bootstrap.min.css",
    ),
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": (
        "bootstrap",
        "dist/js/bootstrap.min.js",
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css": (  # noqa: E501
        "bootstrap-datepicker",
        "dist/css/bootstrap-datepicker.min.css",
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js": (  # noqa: E501
        "bootstrap-datepicker",
        "dist/js/bootstrap-datepicker.min.js",
    ),
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css": (  # noqa: E501
        "@forevolve/bootstrap-dark",
        "dist/css/bootstrap-prefers-dark.css",
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css": (
        "@fortawesome/fontawesome-free",
        "css/all.min.css",
    ),
    "https://cdn.jsdelivr.net/npm/vega@5": ("vega", "build/vega.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-lite@5": ("vega-lite", "build/vega-lite.min.js"),
    "https://cdn.jsdelivr.net/npm/vega-embed@6": ("vega-embed", "build/vega-embed.min.js"),
}
# bootstrap-table's files, as the templates name them (1.19.0 and 1.19.1 alike).
_BOOTSTRAP_TABLE = re.compile(r"https://unpkg\.com/bootstrap-table@1\.19\.[01]/(dist/[\w./-]+)")
_GX_IMAGE = re.compile(re.escape(GX_IMAGES_URL) + r"([\w.-]+)(?:\?[^\"')\s]*)?")
_SUBRESOURCE_CHECKS = re.compile(r'\s+(?:integrity|crossorigin)="[^"]*"')


def assets_dir() -> Path:
    """Where the fetched files live: $RAG_INGEST_ASSETS_DIR, else beside the installation."""
    configured = os.environ.get(ASSETS_DIR_ENV)
    return Path(configured) if configured else Path(sys.prefix) / "share" / "rag-ingest" / "assets"


def missing(target: Path | None = None) -> list[str]:
    """The packages not fetched yet."""
    root = target or assets_dir()
    return [name for name, p in PACKAGES.items() if not (root / p.folder / ".complete").exists()]


def _verified(package: Package, data: bytes) -> bytes:
    algorithm, _, expected = package.integrity.partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if actual != expected:
        raise ValueError(
            f"{package.tarball}: {algorithm} {actual} is not the pinned {expected}; not used"
        )
    return data


def _kept(package: Package, member: str) -> str | None:
    """The path of a tarball member under the package folder, if it is one to keep."""
    inner = member.split("/", 1)[1] if "/" in member else ""
    keep = any(inner == k or (k.endswith("/") and inner.startswith(k)) for k in package.keep)
    return inner if keep and ".." not in Path(inner).parts else None


def fetch(target: Path | None = None) -> list[str]:
    """Download and unpack every package not fetched yet; the names fetched."""
    root = target or assets_dir()
    fetched = []
    for name in missing(root):
        package = PACKAGES[name]
        with urllib.request.urlopen(package.tarball, timeout=60) as response:  # noqa: S310
            data = _verified(package, response.read())
        folder = root / package.folder
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member in archive.getmembers():
                inner = _kept(package, member.name)
                source = archive.extractfile(member) if member.isfile() else None
                if inner is None or source is None:
                    continue
                destination = folder / inner
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_bytes(source.read())
        (folder / ".complete").write_text(package.tarball + "\n")
        fetched.append(name)
    return fetched


def localise(html: str, assets_url: str) -> str:
    """A Data Docs page with every CDN script, style and GX image pointed at `assets_url`."""
    for url, (name, path) in CDN_FILES.items():
        html = html.replace(url, f"{assets_url}/{PACKAGES[name].folder}/{path}")
    table = PACKAGES["bootstrap-table"].folder
    html = _BOOTSTRAP_TABLE.sub(lambda m: f"{assets_url}/{table}/{m.group(1)}", html)
    html = _GX_IMAGE.sub(lambda m: _gx_image(m.group(1), assets_url), html)
    # The local copies are checked at fetch time; the CDN's hashes name other bytes.
    return _SUBRESOURCE_CHECKS.sub("", html)


def gx_images_dir() -> Path:
    """The images the GX package ships (found without importing it: that takes seconds)."""
    import importlib.util

    spec = importlib.util.find_spec("great_expectations")
    if spec is None or spec.origin is None:
        return Path("/nonexistent")
    return Path(spec.origin).parent / "render" / "view" / "static" / "images"


def _gx_image(name: str, assets_url: str) -> str:
    """A GX image's local URL; one GX does not ship (its dark-theme logo) loads nothing."""
    if (gx_images_dir() / name).is_file():
        return f"{assets_url}/{GX_IMAGES}/{name}"
    return "data:,"

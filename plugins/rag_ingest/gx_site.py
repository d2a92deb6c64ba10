"""A Data Docs index that keeps earlier pages.

Every gate runs in its own ephemeral Great Expectations context, which knows
only its own validation. GE's default index builder deletes every page on
disk that its context does not know (`skip_and_clean_missing=True`, which the
site configuration cannot change), so each gate would wipe the pages of the
gates and runs before it. This builder keeps them and lists them all.
"""

from __future__ import annotations

from typing import Any

from great_expectations.render.renderer.site_builder import DefaultSiteIndexBuilder


class KeepingSiteIndexBuilder(DefaultSiteIndexBuilder):
    def build(self, skip_and_clean_missing: bool = True, build_index: bool = True) -> Any:
        return super().build(skip_and_clean_missing=False, build_index=build_index)

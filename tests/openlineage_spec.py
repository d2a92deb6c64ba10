"""OpenLineage events checked against the specification's own JSON schemas.

The specification (spec/OpenLineage.json and spec/facets/ of
github.com/OpenLineage/OpenLineage) ships in no package this project can
install, and another project's files are not copied in. Point
OPENLINEAGE_SPEC_DIR at the spec/ folder of a checkout of that repository and
the lineage tests validate every event with it, as RAG_INGEST_MONGODB_URI
turns on the live MongoDB tests; without it they are skipped, and the events
are still rebuilt through openlineage-python's classes generated from that
schema (tests/e2e/test_lineage.py).

An event is validated against the schema its `schemaURL` names, each facet
against the one its `_schemaURL` names, looked up by file name: the spec's
own, the facet schemas Airflow's OpenLineage provider ships, or this
package's. A facet whose schema is found nowhere is an error, not a pass.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

SPEC_DIR_VARIABLE = "OPENLINEAGE_SPEC_DIR"
needs_spec = pytest.mark.skipif(
    not os.environ.get(SPEC_DIR_VARIABLE),
    reason=f"{SPEC_DIR_VARIABLE} is not set: no copy of the OpenLineage specification",
)


def facets_of(event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, facets) for every facet map of an event."""
    found = [("run", event["run"].get("facets", {})), ("job", event["job"].get("facets", {}))]
    for side in ("inputs", "outputs"):
        for n, dataset in enumerate(event.get(side, [])):
            for key in ("facets", "inputFacets", "outputFacets"):
                found.append((f"{side}[{n}].{key}", dataset.get(key, {})))
    return found


def _schema_folders(spec_dir: Path) -> list[Path]:
    import airflow.providers.openlineage as provider

    import rag_ingest

    return [
        spec_dir,
        spec_dir / "facets",
        Path(provider.__file__).parent / "facets",
        Path(rag_ingest.__file__).parent / "schemas",
    ]


class SpecSchemas:
    """The schemas an event may name, from a copy of the specification."""

    def __init__(self, spec_dir: Path) -> None:
        from referencing import Registry, Resource

        self.documents: dict[str, tuple[str, dict[str, Any]]] = {}  # file name -> ($id, schema)
        for folder in _schema_folders(spec_dir):
            for path in sorted(folder.glob("*.json")):
                schema = json.loads(path.read_text())
                self.documents[path.name] = (schema.get("$id", f"urn:file:{path.name}"), schema)
        if "OpenLineage.json" not in self.documents:
            raise FileNotFoundError(f"no OpenLineage.json in {spec_dir}")
        self.registry = Registry().with_resources(
            (uri, Resource.from_contents(schema)) for uri, schema in self.documents.values()
        )
        self.versions: dict[str, str] = {}  # a named schema -> the version validated against
        self.validators: dict[str, Any] = {}  # a schema reference -> its validator

    def errors(self, event: dict[str, Any]) -> list[str]:
        """What is wrong with `event` by the schemas it names (empty: valid)."""
        problems = self._check(event, event["schemaURL"], "event")
        for where, facets in facets_of(event):
            for key, facet in facets.items():
                problems += self._check(facet, facet.get("_schemaURL", ""), f"{where}.{key}")
        return problems

    def _check(self, value: dict[str, Any], schema_url: str, where: str) -> list[str]:
        from jsonschema import Draft202012Validator

        address, _, pointer = schema_url.partition("#")
        name = re.split(r"[/:]", address)[-1]
        if name not in self.documents:
            return [f"{where}: no schema {name!r} ({schema_url!r}) in the specification"]
        uri, _ = self.documents[name]
        self.versions[address] = uri
        reference = f"{uri}#{pointer}"
        if reference not in self.validators:  # one per schema, not per facet checked
            self.validators[reference] = Draft202012Validator(
                {"$ref": reference},
                registry=self.registry,
                format_checker=Draft202012Validator.FORMAT_CHECKER,
            )
        return [
            f"{where}: {error.message} (at {'/'.join(map(str, error.absolute_path)) or '/'})"
            for error in self.validators[reference].iter_errors(value)
        ]


def spec_schemas() -> SpecSchemas:
    return SpecSchemas(Path(os.environ[SPEC_DIR_VARIABLE]))

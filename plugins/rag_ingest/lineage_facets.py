"""A run's lineage (rag_ingest.lineage) as OpenLineage facets, for Airflow's
OpenLineage provider: the report task returns it from
`get_openlineage_facets_on_complete` and `_on_failure` (dag_factory.ReportTask).

Standard facets where the spec has one (`dataQualityAssertions` on the input,
`outputStatistics` on the output); the run's counts in one facet of our own,
`ragIngest_run`, whose JSON schema ships in this package (schemas/).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import attr
from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.facet_v2 import (
    RunFacet,
    data_quality_assertions_dataset,
    output_statistics_output_dataset,
)

from rag_ingest.lineage import RunLineage

RUN_FACET_KEY = "ragIngest_run"  # prefixed with the producer, as custom facets should be
RUN_FACET_SCHEMA = "RagIngestRunFacet.json"
# Names the schema file this package ships in schemas/ (a URN: it has no public URL).
RUN_FACET_SCHEMA_URL = f"urn:rag-ingest:schemas:{RUN_FACET_SCHEMA}#/$defs/RagIngestRunFacet"


def run_facet_schema() -> dict[str, Any]:
    """The JSON schema of `ragIngest_run`, as shipped."""
    return dict(
        json.loads(resources.files("rag_ingest.schemas").joinpath(RUN_FACET_SCHEMA).read_text())
    )


@attr.define
class RagIngestRunFacet(RunFacet):
    """What one ingestion run of a source did (the run report's counts)."""

    source: str
    status: str
    generation: str | None
    documentsNew: int  # noqa: N815 - OpenLineage facets are camelCase
    documentsChanged: int  # noqa: N815
    documentsUnchanged: int  # noqa: N815
    documentsDeleted: int  # noqa: N815
    documentsQuarantined: int  # noqa: N815
    chunksEmbedded: int  # noqa: N815
    chunksWritten: int  # noqa: N815
    chunksDeleted: int  # noqa: N815

    @staticmethod
    def _get_schema() -> str:
        return RUN_FACET_SCHEMA_URL


def operator_lineage(lineage: RunLineage) -> OperatorLineage:
    """The provider's OperatorLineage of one run."""
    counts = lineage.counts
    assertions = data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
        assertions=[
            data_quality_assertions_dataset.Assertion(
                assertion=found.kind,
                success=found.success,
                column=found.column,
                name=f"{found.gate}.{found.expectation}",
                severity="error",  # a failed expectation stops the run before the store
            )
            for found in lineage.assertions
        ]
    )
    written = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
        rowCount=counts["chunks_written"]
    )
    run = RagIngestRunFacet(
        source=lineage.source_name,
        status=lineage.status,
        generation=lineage.generation,
        documentsNew=counts["documents_new"],
        documentsChanged=counts["documents_changed"],
        documentsUnchanged=counts["documents_unchanged"],
        documentsDeleted=counts["documents_deleted"],
        documentsQuarantined=counts["quarantined"],
        chunksEmbedded=counts["chunks_embedded"],
        chunksWritten=counts["chunks_written"],
        chunksDeleted=counts["chunks_deleted"],
    )
    return OperatorLineage(
        inputs=[
            InputDataset(
                namespace=lineage.read.namespace,
                name=lineage.read.name,
                inputFacets={"dataQualityAssertions": assertions},
            )
        ],
        outputs=[
            OutputDataset(
                namespace=lineage.written.namespace,
                name=lineage.written.name,
                outputFacets={"outputStatistics": written},
            )
        ],
        run_facets={RUN_FACET_KEY: run},
    )

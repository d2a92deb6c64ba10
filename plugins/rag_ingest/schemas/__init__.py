"""JSON schemas this package ships (the OpenLineage facet of its own)."""

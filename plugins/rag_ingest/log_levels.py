"""Third-party loggers quietened in rag-ingest's tasks, so a task log says what ran.

Great Expectations logs hundreds of INFO lines at import ("Skipping
registering function ...", "Multiple declarations of metric ...") and at
every validation ("Loading 'datasources'"); py4j logs each gateway call.
Warnings and errors from them still show. Applied where each library is
first imported (rag_ingest.quality.suites, rag_ingest.spark).
"""

from __future__ import annotations

import logging

QUIETENED = {
    "great_expectations": logging.WARNING,
    "py4j": logging.WARNING,
}


def quieten_third_party() -> None:
    for name, level in QUIETENED.items():
        logging.getLogger(name).setLevel(level)

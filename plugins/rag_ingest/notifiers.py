"""The default notifier, and how a configured one is built.

It is told of freshness breaches and of failed ingestion runs.

Notifiers are Airflow's own (`BaseNotifier` subclasses: Slack, email, and
the other providers' ones), named by import path in `freshness.notifier`,
so alerting needs no code here and credentials stay in Airflow connections.
"""

from __future__ import annotations

import html
import importlib
import logging
from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier

from rag_ingest.config import ConfigError

log = logging.getLogger(__name__)


class LogNotifier(BaseNotifier):
    """Writes the alert to the task log (the default: nothing to set up)."""

    template_fields = ("message",)

    def __init__(self, message: str = "") -> None:
        super().__init__()
        self.message = message

    def notify(self, context: Any) -> None:
        log.warning("rag-ingest alert:\n%s", self.message)


def build_notifier(
    path: str, kwargs: dict[str, Any], message: str, subject: str = "rag-ingest alert"
) -> BaseNotifier:
    """An instance of the notifier class at `path`, told `message`.

    The message goes to the keyword the class takes for its text (`message`,
    `text` or `subject`+`html_content`), unless the configuration sets it.
    """
    module_name, _, class_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ConfigError(f"freshness.notifier: cannot import {path!r} ({error})") from error
    if not (isinstance(cls, type) and issubclass(cls, BaseNotifier)):
        raise ConfigError(f"freshness.notifier: {path!r} is not an Airflow BaseNotifier")
    arguments = dict(kwargs)
    parameters = cls.__init__.__code__.co_varnames
    for name in ("message", "text"):
        if name in parameters and name not in arguments:
            arguments[name] = message
            break
    else:
        if "html_content" in parameters:
            arguments.setdefault("subject", subject)
            arguments.setdefault("html_content", f"<pre>{html.escape(message)}</pre>")
    notifier: BaseNotifier = cls(**arguments)
    return notifier

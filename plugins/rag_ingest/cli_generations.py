"""`rag-ingest generations list|rollback|activate`: what each source keeps, and the pointer.

A rollback or activation is the same one pointer write a cutover makes;
readers see the other generation from their next query on.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rag_ingest.config import Settings

# Exit code of a pointer move that cannot be made (the reason is printed).
NOT_POSSIBLE = 2


def add_commands(commands: Any) -> None:
    """The `generations` command and its actions, on the CLI's subparsers."""
    parser = commands.add_parser(
        "generations",
        help="index generations per source: list, roll back, activate",
        description="A change of model, prompts or chunking builds a new generation beside "
        "the live one; the cutover moves a pointer. `list` shows each source's generations; "
        "`rollback` serves the previous one again; `activate NAME` serves a kept one.",
    )
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="each source's generations and their state")
    listing.add_argument("--source", help="only this source")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    rollback = actions.add_parser("rollback", help="serve the previous generation again")
    rollback.add_argument("--source", required=True)
    activate = actions.add_parser("activate", help="serve a kept, complete generation")
    activate.add_argument("name", help="the generation, as `list` names it")
    activate.add_argument("--source", required=True)
    parser.set_defaults(handler=run)


def rows(settings: Settings, source: str | None = None) -> list[dict[str, Any]]:
    """One row per kept generation, for `list` and the UI."""
    from rag_ingest.generations import status
    from rag_ingest.stores import open_generations

    gens = open_generations(settings)
    names = [source] if source else [s.name for s in settings.sources]
    found = []
    for name in names:
        settings.source(name)  # an unknown source is a clear error
        pointer = gens.pointer(name)
        for record in gens.records(name):
            found.append(
                {
                    "source": name,
                    "generation": record.name,
                    "status": status(record, pointer),
                    "table": record.table,
                    "documents": f"{record.documents_built}/{record.documents_listed}"
                    if record.documents_listed
                    else "-",
                    "built_with": record.spec.describe(),
                    "since": (record.live_since or record.created_at).isoformat(timespec="seconds"),
                    "reason": record.reason,
                    "evaluation": dict(record.evaluation),
                }
            )
    return found


def run(settings: Settings, args: argparse.Namespace) -> int:
    from rag_ingest.pipeline.binding import GenerationError
    from rag_ingest.pipeline.generation import activate

    if args.action == "list":
        found = rows(settings, args.source)
        if args.json:
            print(json.dumps(found, indent=2, default=str))
            return 0 if found else 1
        if not found:
            print("no generations yet: no run has bound a source to one")
            return 1
        for row in found:
            print(
                f"{row['source']}  {row['generation']}  {row['status']:<9} {row['documents']:>9}"
                f"  {row['table']}  {row['built_with']}"
            )
            if row["reason"]:
                print(f"    {row['reason']}")
        return 0
    try:
        name = args.name if args.action == "activate" else None
        moved = activate(settings, args.source, name)
    except GenerationError as error:
        print(f"rag-ingest: error: {error}", file=sys.stderr)
        return NOT_POSSIBLE
    print(f"{args.source}: {moved.live} serves now (was {moved.previous})")
    return 0

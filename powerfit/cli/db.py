"""``powerfit db``: inspect and migrate the measurement store."""

from __future__ import annotations

import argparse
import json

from powerfit.cli import add_format_arguments
from powerfit.cli.ingest import add_db_argument

HELP = """\
Inspect and migrate the measurement store.

examples:
  powerfit db stats --json              # rows per table
  powerfit db current                   # schema revision of the store
  powerfit db upgrade                   # to the newest schema this powerfit knows
  powerfit db downgrade base --db old.db
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``db`` sub-command and its actions."""
    parser = subparsers.add_parser(
        "db",
        help="inspect and migrate the measurement store",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    stats = actions.add_parser("stats", help="rows per table")
    add_format_arguments(stats)
    current = actions.add_parser("current", help="schema revision of the store")
    upgrade = actions.add_parser("upgrade", help="upgrade the schema (default: to head)")
    upgrade.add_argument("revision", nargs="?", default="head", metavar="REV")
    downgrade = actions.add_parser("downgrade", help="downgrade the schema (default: -1)")
    downgrade.add_argument("revision", nargs="?", default="-1", metavar="REV")
    for sub in (stats, current, upgrade, downgrade):
        add_db_argument(sub)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run one ``db`` action."""
    from powerfit.store import open_store, schema

    if args.action == "stats":
        with open_store(args.db) as store:
            counts = store.counts()
        if args.json:
            print(json.dumps(counts))
        else:
            for table, count in counts.items():
                print(f"{table:<24} {count:>10,}")
        return 0
    with open_store(args.db, migrate=False) as store:
        if args.action == "current":
            current = schema.current_revision(store.engine)
            head = schema.head_revision()
            state = "head" if current == head else f"head is {head}"
            print(f"{current or 'empty (no powerfit schema)'} ({state}) {store.url}")
        elif args.action == "upgrade":
            schema.upgrade(store.engine, args.revision)
            print(f"at {schema.current_revision(store.engine)}: {store.url}")
        else:
            schema.downgrade(store.engine, args.revision)
            print(f"at {schema.current_revision(store.engine) or 'base'}: {store.url}")
    return 0

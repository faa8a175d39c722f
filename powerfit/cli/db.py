"""``powerfit db``: inspect and migrate the measurement store."""

from __future__ import annotations

import argparse
import json
import re
from typing import TYPE_CHECKING

from powerfit.cli import add_format_arguments, add_yes_argument, confirm
from powerfit.cli.ingest import add_db_argument

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

HELP = """\
Inspect and migrate the measurement store.

A downgrade drops tables and the rows they hold: it says what it will remove and
asks on a terminal; without a terminal (scripts, pipes) it needs --yes. It has no
default target: name one ('-1' one revision back, 'base' removes every table).

examples:
  powerfit db stats --json              # rows per table
  powerfit db current                   # schema revision of the store
  powerfit db upgrade                   # to the newest schema this powerfit knows
  powerfit db downgrade base --db old.db --yes
  powerfit db stamp                     # tables made by this powerfit, revision lost
  powerfit db imports --json            # every import: id, source, sha256, rows, --set values
  powerfit db remove-import 3 --yes     # remove import 3 and its rows
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
    upgrade.add_argument(
        "revision",
        nargs="?",
        default="head",
        metavar="REV",
        help="Alembic revision to upgrade to (default: head, the newest this powerfit "
        "knows; 'powerfit db current' shows the store's)",
    )
    downgrade = actions.add_parser(
        "downgrade", help="downgrade the schema, dropping tables (asks; --yes without a terminal)"
    )
    downgrade.add_argument(
        "revision", metavar="REV", help="target revision: '-1' one back, 'base' drops every table"
    )
    add_yes_argument(downgrade)
    stamp = actions.add_parser(
        "stamp",
        help="record the head revision for powerfit tables whose revision was lost "
        "(after checking that they match it)",
    )
    imports = actions.add_parser(
        "imports", help="list imports: id, source, sha256, rows, values given (--set), date"
    )
    add_format_arguments(imports)
    remove = actions.add_parser(
        "remove-import",
        help="remove one import and its rows (asks; --yes without a terminal)",
    )
    remove.add_argument("import_id", type=int, metavar="ID", help="import id (db imports)")
    add_yes_argument(remove)
    for sub in (stats, current, upgrade, downgrade, stamp, imports, remove):
        add_db_argument(sub)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run one ``db`` action."""
    from powerfit.store import check_store, open_store, schema

    if args.action in ("imports", "remove-import"):
        return _imports(args)
    if args.action == "stats":
        with open_store(args.db, create=args.db is None) as store:
            counts = store.counts()
        if args.json:
            print(json.dumps(counts))
        else:
            for table, count in counts.items():
                print(f"{table:<24} {count:>10,}")
        return 0
    with open_store(args.db, migrate=False) as store:
        if args.action == "stamp":
            revision = _stamp_head(store.engine)
            print(f"at {revision}: {store.url}")
            return 0
        check_store(store.engine)
        if args.action == "current":
            current = schema.current_revision(store.engine)
            head = schema.head_revision()
            state = "head" if current == head else f"head is {head}"
            print(f"{current or 'empty (no powerfit schema)'} ({state}) {store.url}")
        elif args.action == "upgrade":
            schema.upgrade(store.engine, args.revision)
            print(f"at {schema.current_revision(store.engine)}: {store.url}")
        else:
            current = schema.current_revision(store.engine)
            if current is None:
                print(f"nothing to downgrade (no powerfit schema): {store.url}")
                return 0
            plan = _downgrade_plan(store.engine, current, args.revision)
            if plan is not None:
                what, details = plan
                confirm(f"downgrade {store.url} {what}", details, yes=args.yes)
            schema.downgrade(store.engine, args.revision)
            print(f"at {schema.current_revision(store.engine) or 'base'}: {store.url}")
    return 0


def _imports(args: argparse.Namespace) -> int:
    """``db imports`` and ``db remove-import``."""
    from powerfit.files import printable
    from powerfit.store import open_store

    with open_store(args.db, create=args.db is None) as store:
        listed = store.imports()
        if args.action == "imports":
            if args.json:
                print(json.dumps(listed, indent=2))
                return 0
            if not listed:
                print(f"no imports in {store.url}")
                return 0
            print(f"{'id':>4}  {'date (UTC)':<19}  {'rows':>7}  {'sha256':<12}  source  [values]")
            for item in listed:
                given = item["overrides"]
                values = (
                    " [" + printable(", ".join(f"{k}={v}" for k, v in given.items())) + "]"
                    if given
                    else (" [values not recorded]" if given is None else "")
                )
                date = (item["imported_at"] or "")[:19].replace("T", " ")
                print(
                    f"{item['id']:>4}  {date:<19}  {item['rows']:>7,}  {item['sha256'][:12]:<12}"
                    f"  {printable(item['source'])}{values}"
                )
            return 0
        found = next((i for i in listed if i["id"] == args.import_id), None)
        if found is None:
            from powerfit.exceptions import StoreError

            raise StoreError(
                f"no import {args.import_id} in {store.url} (powerfit db imports lists them)"
            )
        table = f"{found['kind']}_measurements"
        confirm(
            f"remove import {found['id']} ({printable(found['source'])}) from {store.url}",
            [f"{found['rows']:,} rows of {table} are deleted; ingest the file again to restore"],
            yes=args.yes,
        )
        removed = store.remove_import(found["id"])
    rows = removed["operation_measurements"] + removed["run_measurements"]
    source = printable(found["source"])
    print(f"removed import {found['id']} ({source}) and its {rows:,} rows: {store.url}")
    return 0


def _downgrade_plan(engine: Engine, current: str, target: str) -> tuple[str, list[str]] | None:
    """What a downgrade from ``current`` to ``target`` removes: (summary, detail lines).

    None when nothing would change (already at ``target``).

    Raises
    ------
    StoreError
        For an unknown target, or one that is not below the current revision.
    """
    from powerfit.exceptions import StoreError
    from powerfit.store import schema

    script = _script(schema)
    chain = []  # from the current revision down to the first one
    revision = script.get_revision(current)
    while revision is not None:
        chain.append(revision)
        down = revision.down_revision
        if not isinstance(down, str):  # None (first revision) or a merge point
            break
        revision = script.get_revision(down)
    ids = [r.revision for r in chain]
    if target == "base":
        undone = chain
    elif re.fullmatch(r"-\d+", target):
        undone = chain[: int(target[1:])]
    else:
        try:
            found = script.get_revision(target)
        except Exception:  # alembic raises several kinds for an unknown revision
            found = None
        if found is None:
            known = ", ".join(r.revision for r in script.walk_revisions())
            raise StoreError(f"unknown revision {target!r} (known: base, {known})")
        if found.revision not in ids:
            raise StoreError(
                f"revision {target!r} is not below the store's revision {current!r}; "
                "to go up, use 'powerfit db upgrade'"
            )
        undone = chain[: ids.index(found.revision)]
    if not undone:
        return None
    counts = _row_counts(engine)
    total = sum(counts.values())
    rows = [f"{table:<24} {count:>10,} rows" for table, count in counts.items()]
    steps = ", ".join(f"{r.revision} ({_title(r.doc)})" for r in undone)
    if len(undone) == len(chain) and chain[-1].down_revision is None:
        what = f"to base, DROPPING every powerfit table ({len(counts)} tables, {total:,} rows)"
        return what, [f"undoes {steps}; these tables and rows are lost:", *rows]
    what = f"to {target!r}, undoing {len(undone)} revision(s) (the store holds {total:,} rows)"
    return what, [f"undoes {steps}; tables and columns they created are dropped. Rows now:", *rows]


def _title(doc: str | None) -> str:
    """First line of a revision's docstring."""
    return next((line.strip() for line in (doc or "").splitlines() if line.strip()), "")


def _script(schema):  # type: ignore[no-untyped-def]
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(schema.alembic_config())


def _row_counts(engine: Engine) -> dict[str, int]:
    """Rows of every table of the store but ``alembic_version``."""
    import sqlalchemy as sa

    from powerfit.store.engine import transaction

    with transaction(engine) as conn:
        names = [t for t in sa.inspect(conn).get_table_names() if t != "alembic_version"]
        return {
            name: conn.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar_one()
            for name in sorted(names)
        }


def _stamp_head(engine: Engine) -> str:
    """Record the head revision in a store whose powerfit tables lost theirs.

    Refuses when the store already has a revision, has no powerfit table, or when
    its tables differ from the head schema (Alembic's comparison, listed).
    """
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from powerfit.exceptions import StoreError
    from powerfit.store import schema
    from powerfit.store.engine import mask_url, transaction
    from powerfit.store.models import Base

    where = mask_url(engine.url)
    ours = set(Base.metadata.tables)
    with transaction(engine, write=True) as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        current = context.get_current_revision()
        if current is not None:
            raise StoreError(f"the store {where} is at revision {current!r}; nothing to stamp")
        present = ours & set(conn.dialect.get_table_names(conn))
        if not present:
            raise StoreError(f"the store {where} has no powerfit table; nothing to stamp")
        diffs = [d for d in compare_metadata(context, Base.metadata) if _concerns(d, ours)]
        if diffs:
            shown = "; ".join(str(d) for d in diffs[:5])
            raise StoreError(
                f"the tables of {where} differ from powerfit's schema {schema.head_revision()}"
                f" ({len(diffs)} differences: {shown}); not stamped"
            )
        head = schema.head_revision()
        context.stamp(_script(schema), head)
    return head


def _concerns(diff: object, ours: set[str]) -> bool:
    """Whether one Alembic difference is about one of powerfit's tables."""
    items = diff if isinstance(diff, list) else [diff]
    for item in items:
        for part in item if isinstance(item, tuple) else (item,):
            name = getattr(part, "name", None)
            table = getattr(part, "table", None)
            if name in ours or getattr(table, "name", None) in ours or part in ours:
                return True
    return False

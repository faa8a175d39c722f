"""``powerfit env``: versions, where powerfit keeps things, and the exports a shell needs."""

from __future__ import annotations

import argparse
import json
import shlex
import sys

from powerfit.cli import add_format_arguments

HELP = """\
Print powerfit's version and its dependencies', the folder of the default stores,
the measurement store URL (--db / POWERFIT_DB_URL), the MLflow tracking URI
(--tracking-uri / MLFLOW_TRACKING_URI) and its artifact folder, the data home
(POWERFIT_DATA_HOME) and where the published data are read from. Passwords in URLs
are shown as ***.

With --exports, print only the lines a shell needs so that plain MLflow
(mlflow.pyfunc.load_model("models:/..."), mlflow models predict, mlflow ui) uses
powerfit's tracking store and registry instead of creating ./mlflow.db:

  eval "$(powerfit env --exports)"

examples:
  powerfit env
  powerfit env --exports
  powerfit env --json
  powerfit env --published-data      # the folder holding the paper's four files
"""

#: Distributions whose versions are reported (not imported: ``env`` stays fast).
_PACKAGES = ("numpy", "pandas", "scipy", "scikit-learn", "sqlalchemy", "alembic", "mlflow",
             "skops", "torch", "transformers", "psycopg")  # fmt: skip


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``env`` sub-command."""
    parser = subparsers.add_parser(
        "env",
        help="versions, store and tracking locations, and the shell exports MLflow needs",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--db", metavar="URL", help="store URL (default: POWERFIT_DB_URL)")
    parser.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI")
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--exports",
        action="store_true",
        help='print only the export lines for a shell (eval "$(powerfit env --exports)")',
    )
    what.add_argument(
        "--published-data",
        action="store_true",
        help="print only the folder holding the paper's four processed files (*.csv*)",
    )
    add_format_arguments(parser)
    parser.set_defaults(func=run)


def environment(db: str | None = None, tracking_uri: str | None = None) -> dict[str, object]:
    """What ``powerfit env`` reports, URLs masked.

    Parameters
    ----------
    db : str, optional
        Store URL (default ``POWERFIT_DB_URL``, else the default store).
    tracking_uri : str, optional
        Tracking URI (default ``MLFLOW_TRACKING_URI``, else the default).

    Returns
    -------
    dict
        ``powerfit``, ``python``, ``packages`` (name → version or None), ``home``,
        ``store``, ``tracking_uri``, ``artifacts``, ``data_home``,
        ``published_data``, ``published_data_embedded``.
    """
    import platform
    from importlib import metadata

    from powerfit._version import __version__
    from powerfit.datasets.home import get_data_home
    from powerfit.datasets.mayaki2025 import embedded_dir, mayaki2025_dir
    from powerfit.store.engine import default_home, mask_url, resolve_url
    from powerfit.tracking.locations import artifact_location, resolve_tracking_uri

    packages: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    uri = resolve_tracking_uri(tracking_uri)
    published = mayaki2025_dir()
    return {
        "powerfit": __version__,
        "python": platform.python_version(),
        "packages": packages,
        "home": str(default_home()),
        "store": mask_url(resolve_url(db)),
        "tracking_uri": mask_url(uri),
        "artifacts": artifact_location(uri),
        "data_home": str(get_data_home()),
        "published_data": str(published),
        "published_data_embedded": published == embedded_dir(),
    }


def exports(tracking_uri: str | None = None) -> list[str]:
    """Shell lines that point plain MLflow at powerfit's tracking store and registry.

    A URI holding a password is not printed (it would be shown masked, which no
    shell can use): the line says to set ``MLFLOW_TRACKING_PASSWORD`` instead.
    """
    from powerfit.store.engine import mask_url
    from powerfit.tracking.locations import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    if mask_url(uri) != uri:
        return [
            "# the tracking URI holds a password: export MLFLOW_TRACKING_URI without it "
            "and MLFLOW_TRACKING_PASSWORD separately"
        ]
    return [f"export MLFLOW_TRACKING_URI={shlex.quote(uri)}"]


def run(args: argparse.Namespace) -> int:
    """Run ``powerfit env``."""
    if args.exports:
        print("\n".join(exports(args.tracking_uri)))
        return 0
    if args.published_data:
        from powerfit.datasets.mayaki2025 import mayaki2025_dir

        print(mayaki2025_dir())
        return 0
    info = environment(args.db, args.tracking_uri)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    versions = ", ".join(f"{k} {v}" for k, v in info["packages"].items() if v)  # type: ignore[union-attr]
    source = "embedded copy (MIT), no download" if info["published_data_embedded"] else "data home"
    lines = [
        f"powerfit {info['powerfit']} (Python {info['python']})",
        f"  {versions}",
        f"home            {info['home']}  (POWERFIT_HOME, else $XDG_DATA_HOME/powerfit)",
        f"store           {info['store']}  (--db, POWERFIT_DB_URL)",
        f"tracking URI    {info['tracking_uri']}  (--tracking-uri, MLFLOW_TRACKING_URI)",
        f"artifacts       {info['artifacts'] or 'chosen by the tracking server'}",
        f"data home       {info['data_home']}  (POWERFIT_DATA_HOME)",
        f"published data  {info['published_data']}  ({source})",
        "",
        'for plain MLflow in a shell: eval "$(powerfit env --exports)", i.e.',
        *exports(args.tracking_uri),
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0

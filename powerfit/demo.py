"""The main job on embedded defaults: published data → store → fit → MLflow → comparison.

:func:`run_demo` reads the published measurements of Mayaki & Charpenay (2025)
(from the data home, else the copy embedded in the package: no network), ingests
them into the measurement store, fits the A100's efficiency laws and energy model,
records and registers them in the MLflow store (promoting the new version to
``champion``), loads the champion back through ``mlflow.pyfunc`` and compares
candidate Transformer architectures by predicted energy per training step.

By default it uses powerfit's default stores (``POWERFIT_DB_URL`` and
``MLFLOW_TRACKING_URI``, else ``<powerfit home>/powerfit.db`` and
``<powerfit home>/mlflow.db``), the same ones every other command and the Python
API use, so what the demo registers is there afterwards; ``workdir`` keeps both in
a folder of their own instead. Running it again reuses the store (files already
ingested are skipped) and adds a model version.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

__all__ = ["CANDIDATES", "GPU", "compare_candidates", "run_demo"]

GPU = "NVIDIA A100 80GB PCIe"

#: Candidate architectures compared by the demo (batch 64, sequence length 320, as in
#: the paper's worked example). Models A and B are the paper's.
CANDIDATES = pd.DataFrame(
    {
        "model": ["bert"] * 5,
        "n_layers": [4, 6, 12, 4, 24],
        "d_model": [256, 512, 768, 1024, 1024],
        "n_heads": [4, 8, 12, 16, 16],
        "batch_size": 64,
        "seq_len": 320,
    },
    index=pd.Index(
        [
            "small (4x256)",
            "Model A (6x512)",
            "Model B (12x768)",
            "wide (4x1024)",
            "large (24x1024)",
        ],
        name="candidate",
    ),
)


def compare_candidates(
    model, pipeline, configs: pd.DataFrame = CANDIDATES, profile: str = "mayaki2025-a100"
) -> pd.DataFrame:
    """The energy-aware comparison table.

    Parameters
    ----------
    model : mlflow.pyfunc.PyFuncModel
        The loaded champion (configurations → energy [J]).
    pipeline : sklearn.pipeline.Pipeline
        The same fitted pipeline in Python, for the predicted step time.
    configs : pandas.DataFrame
        Candidate configurations.
    profile : str
        Published profile estimated beside ours.

    Returns
    -------
    pandas.DataFrame
        Per candidate: training-step FLOPs [FLOP], predicted step time [s] (sum of
        the modelled operations' durations), predicted energy [J], ratio to the
        cheapest, and the published profile's energy [J].
    """
    from powerfit.paper.flops import configuration_flops
    from powerfit.paper.profiles import load_profile

    shapes = configs.drop(columns=["model"])  # integer counts, as the signature says
    inputs = shapes.astype(float)
    energy = pd.Series(
        pd.DataFrame(model.predict(shapes)).iloc[:, 0].to_numpy(), index=configs.index
    )
    flops = configuration_flops(inputs, "transformer", per="model", training=True).sum(axis=1)
    table = pd.DataFrame(
        {
            "train-step FLOP": flops,
            "step time [s]": _step_time(pipeline, inputs),
            "energy [J]": energy,
            "x cheapest": energy / energy.min(),
            "published profile [J]": load_profile(profile).pipeline().predict(inputs),
        },
        index=configs.index,
    )
    return table


def _step_time(pipeline, inputs: pd.DataFrame) -> pd.Series:
    """Predicted time of the operations the model times [s]."""
    if hasattr(pipeline, "predict_duration"):
        return pd.Series(pipeline.predict_duration(inputs), index=inputs.index)
    durations = pipeline.named_steps["durations"].transform(inputs)
    return durations.sum(axis=1)


def run_demo(
    workdir: str | os.PathLike[str] | None = None,
    *,
    data_home: str | os.PathLike[str] | None = None,
    store_url: str | None = None,
    tracking_uri: str | None = None,
    echo: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Run the whole pipeline on the published data; return the comparison table.

    Parameters
    ----------
    workdir : path, optional
        Keep the SQLite store (``powerfit.db``) and the MLflow store (``mlflow.db``,
        ``mlartifacts/``) in this folder instead of the default stores.
    data_home : path, optional
        Where the published data are (see :func:`powerfit.datasets.home.get_data_home`);
        without them there, the embedded copy is read.
    store_url : str, optional
        Measurement store (default: ``POWERFIT_DB_URL``, else the default store).
    tracking_uri : str, optional
        MLflow tracking URI (default: ``MLFLOW_TRACKING_URI``, else the default).
    echo : callable
        Receives one progress line per step, and one per stage of the fit as it
        starts.

    Returns
    -------
    pandas.DataFrame
        See :func:`compare_candidates`.
    """
    from powerfit.datasets.mayaki2025 import fetch_mayaki2025
    from powerfit.store import resolve_url
    from powerfit.store.engine import mask_url
    from powerfit.tracking.locations import resolve_tracking_uri

    if workdir is not None:
        folder = Path(workdir).expanduser().resolve()
        folder.mkdir(parents=True, exist_ok=True)
        store_url = store_url or f"sqlite:///{folder / 'powerfit.db'}"
        tracking_uri = tracking_uri or f"sqlite:///{folder / 'mlflow.db'}"
    db_url = resolve_url(store_url)
    tracking_uri = resolve_tracking_uri(tracking_uri)
    start = time.perf_counter()

    def step(number: int, text: str) -> None:
        echo(f"[{number}/6 {time.perf_counter() - start:5.1f} s] {text}")

    step(1, "reading the published measurements (Mayaki & Charpenay, ECAI 2025)")
    data = fetch_mayaki2025(data_home)
    folder = next(iter(data.paths.values())).parent
    where = "the copy embedded in powerfit (MIT)" if data.embedded else "the data home"
    echo(f"        {len(data.paths)} files, checksums verified, from {where}: {folder}")

    from powerfit.store import open_store

    step(2, f"ingesting them into the store {mask_url(db_url)}")
    with open_store(db_url) as store:
        for path in data.paths.values():
            result = store.ingest(path)
            verb = "already there" if result.duplicate else f"{result.rows} rows"
            echo(f"        {path.name}: {verb}")
        counts = store.counts()
    echo("        store: " + ", ".join(f"{v} {k}" for k, v in counts.items()))

    from powerfit.tracking import fit_and_log

    step(3, f"fitting the {GPU} efficiency laws and energy model; recording in "
            f"{mask_url(tracking_uri)}")  # fmt: skip
    fit = fit_and_log(
        db_url,
        gpu=GPU,
        arch="transformer",
        tracking_uri=tracking_uri,
        promote=True,
        progress=lambda stage: echo(f"        {time.perf_counter() - start:5.1f} s  {stage}"),
    )
    for op, law in fit.laws.items():
        echo(
            f"        {op:18s} eta_max={100 * law.eta_max_:5.1f} %  k={law.k_:7.3g}  "
            f"alpha={law.alpha_:.3f}  R2={law.r2_:.3f}"
        )
    for note in fit.notes:
        echo(f"        note: {note}")
    m = fit.metrics
    echo(
        f"        energy model on held-out steps: MAPE {100 * m['test_mape']:.1f} %, "
        f"R2 {m['test_r2']:.3f}, MAE {m['test_mae_j']:.2f} J"
    )
    step(
        4,
        f"registered {fit.model_name} version {fit.version}; champion is version "
        f"{fit.champion_version}",
    )

    import mlflow

    from powerfit.tracking import verified_model

    step(5, f"loading models:/{fit.model_name}@champion with mlflow.pyfunc (digest verified)")
    mlflow.set_tracking_uri(tracking_uri)
    with verified_model(f"models:/{fit.model_name}@champion", tracking_uri) as model_dir:
        model = mlflow.pyfunc.load_model(str(model_dir))

    step(6, "energy-aware comparison (batch 64, sequence length 320, one training step)")
    table = compare_candidates(model, fit.pipeline)
    echo("")
    echo(
        table.to_string(
            formatters={
                "train-step FLOP": "{:.3g}".format,
                "step time [s]": "{:.4f}".format,
                "energy [J]": "{:.1f}".format,
                "x cheapest": "{:.2f}".format,
                "published profile [J]": "{:.1f}".format,
            }
        )
    )
    echo("")
    echo(f"done in {time.perf_counter() - start:.1f} s")
    echo(f"  store:        {mask_url(db_url)}")
    echo(f"  tracking URI: {mask_url(tracking_uri)}  (model {fit.model_name}@champion)")
    echo("  every powerfit command and the Python API use these by default; for plain")
    echo('  MLflow in a shell: eval "$(powerfit env --exports)"')
    return table

"""How well the models predict what was measured: one module per evaluation suite.

``powerfit evaluate`` runs them: the paper's grid of energy protocols
(:mod:`~powerfit.evaluation.paper`, with its protocols in
:mod:`~powerfit.evaluation.paper_protocols` and the models it compares in
:mod:`~powerfit.evaluation.paper_models`), the operator latency laws
(:mod:`~powerfit.evaluation.operators`), whole training steps against NeuSight's
measurements (:mod:`~powerfit.evaluation.steps`) and board power
(:mod:`~powerfit.evaluation.power`). The shipped bundles a suite gives evidence for
(step-time intervals, power laws) are built here, from public data, never in the model
code. The names of the former ``powerfit.evaluation`` module are importable from this
package.
"""

from __future__ import annotations

from powerfit._lazy import lazy_exports

__all__ = [
    "CONFIGURATION_COLUMNS",
    "EXTRA_PROTOCOLS",
    "LSTM_EXTRA_PROTOCOLS",
    "LSTM_PROTOCOLS",
    "TRANSFORMER_PROTOCOLS",
    "Evaluation",
    "Protocol",
    "configuration_ids",
    "evaluate",
    "fit_laws",
    "format_table",
    "infer_ffn_and_vocab",
    "load_operations",
    "load_runs",
    "make_models",
    "metrics",
    "predict_files",
]

_LAZY = {
    "Evaluation": "powerfit.evaluation.paper",
    "LSTM_TARGETS": "powerfit.evaluation.paper",
    "TARGETS": "powerfit.evaluation.paper",
    "default_sources": "powerfit.evaluation.paper",
    "evaluate": "powerfit.evaluation.paper",
    "fit_laws": "powerfit.evaluation.paper",
    "format_table": "powerfit.evaluation.paper",
    "infer_ffn_and_vocab": "powerfit.evaluation.paper",
    "load_operations": "powerfit.evaluation.paper",
    "load_runs": "powerfit.evaluation.paper",
    "metrics": "powerfit.evaluation.paper",
    "predict_files": "powerfit.evaluation.paper",
    "GBM_DEFAULTS": "powerfit.evaluation.paper_models",
    "make_models": "powerfit.evaluation.paper_models",
    "A100": "powerfit.evaluation.paper_protocols",
    "CONFIGURATION_COLUMNS": "powerfit.evaluation.paper_protocols",
    "EXTRA_PROTOCOLS": "powerfit.evaluation.paper_protocols",
    "LSTM_EXTRA_PROTOCOLS": "powerfit.evaluation.paper_protocols",
    "LSTM_PROTOCOLS": "powerfit.evaluation.paper_protocols",
    "Protocol": "powerfit.evaluation.paper_protocols",
    "RTX": "powerfit.evaluation.paper_protocols",
    "TRANSFORMER_PROTOCOLS": "powerfit.evaluation.paper_protocols",
    "configuration_ids": "powerfit.evaluation.paper_protocols",
}

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)

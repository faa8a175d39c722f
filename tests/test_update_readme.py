"""experiments/update_readme.py: the README's tables come from the experiments' output."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def update_readme():
    spec = importlib.util.spec_from_file_location(
        "update_readme", REPO / "experiments" / "update_readme.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(protocol: str, mapes: dict[str, float], seeds: int = 1) -> list[dict]:
    return [
        {"protocol": protocol, "model": m, "mape": v, "mape_sd": 0.04, "seeds": seeds,
         "coverage": 96.3 if m == "powerfit" else None}
        for m, v in mapes.items()
    ]  # fmt: skip


def test_tables_are_written_between_their_markers_from_the_results(update_readme, tmp_path):
    transformer = _rows("random", {"paper": 9.24, "powerfit": 2.47, "gbm": 1.87}, seeds=5)
    transformer += _rows("family-bert", {"paper": 9.87, "powerfit": 6.19, "gbm": 25.97})
    pd.DataFrame(transformer).to_csv(tmp_path / "transformer.csv", index=False)
    lstm = _rows("hidden-640", {"powerfit": 5.04, "gbm": 4.20})
    pd.DataFrame(lstm).to_csv(tmp_path / "lstm.csv", index=False)
    (tmp_path / "meta.json").write_text(json.dumps({"date": "2026-12-03", "seeds": 5}))
    table = update_readme.evaluation_table(tmp_path)
    assert "| random (67/33 rows, stratified) | 9.24 ± 0.04 | 2.47 ± 0.04 | " in table
    assert "**1.87 ± 0.04** | 96 % | ≤ 2.5 ✓ |" in table
    assert "nan" not in table and "(5 seeds)" in table
    assert (
        "| LSTM hidden-640 (train hidden < 640) | – | 5.04 | **4.20** | 96 % | loses by 0.84 |"
        in (table)
    )
    extra = update_readme.extra_table(tmp_path)
    assert "| Transformer | hold out BERT | 9.87 | **6.19** | 25.97 | wins by 3.68 |" in extra
    readme = "intro\n<!-- evaluation:start -->\nold\n<!-- evaluation:end -->\nrest\n"
    assert update_readme.replace_between(readme, "evaluation", table).count("old") == 0
    with pytest.raises(ValueError, match="markers"):
        update_readme.replace_between("no markers", "evaluation", table)
    with pytest.raises(FileNotFoundError, match=r"evaluate_models\.py"):
        update_readme.evaluation_table(tmp_path / "missing")


def test_the_readme_has_the_markers_of_every_generated_table():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    for name in ("evaluation", "evaluation-extra", "benchmarks"):
        assert f"<!-- {name}:start -->" in text and f"<!-- {name}:end -->" in text

"""Hostile ``config.json`` files: one error naming the field, never a traceback (issue 26)."""

from __future__ import annotations

import json
import os
import threading

import pytest

from powerfit.architectures.hf import from_hf_config
from powerfit.exceptions import DataError

GPT2 = {"model_type": "gpt2", "n_layer": 2, "n_embd": 48, "n_head": 4, "vocab_size": 97}

#: case -> (config changes, field named, message regex)
CASES = {
    "n_layer 1e18": ({"n_layer": 1e18}, "n_layer", r"must be ≤ 100,000"),
    "n_layer of 400 digits": ({"n_layer": int("9" * 400)}, "n_layer", r"must be ≤"),
    "n_head 0": ({"n_head": 0}, "n_head", r"must be ≥ 1"),
    "n_embd not divisible by n_head": ({"n_embd": 50}, "n_embd", r"not divisible by n_head=4"),
    "activation []": ({"activation_function": []}, "activation_function", r"not modelled"),
    "activation {}": ({"activation_function": {}}, "activation_function", r"not modelled"),
    "attn_pdrop -1": ({"attn_pdrop": -1}, "attn_pdrop", r"in \[0, 1\]"),
    "attn_pdrop 5": ({"attn_pdrop": 5}, "attn_pdrop", r"in \[0, 1\]"),
    "vocab_size 1e300": ({"vocab_size": 1e300}, "vocab_size", r"must be ≤ 2,147,483,647"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_field_is_refused_by_name(tmp_path, case):
    changes, field, message = CASES[case]
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**GPT2, **changes}))
    with pytest.raises(DataError, match=message) as caught:
        from_hf_config(path)
    assert caught.value.column == field and caught.value.source == str(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("constant", ["Infinity", "-Infinity", "NaN"])
def test_non_finite_json_constants_are_refused(tmp_path, constant):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(GPT2)[:-1] + f', "n_layer": {constant}}}')
    with pytest.raises(DataError, match=f"{constant} is not a number JSON allows"):
        from_hf_config(path)


@pytest.mark.parametrize("spelling", ["Infinity", '{"__float__": "Infinity"}'])
def test_an_unbounded_time_step_limit_reads_as_transformers_writes_it(tmp_path, spelling):
    """Mamba 2's ``time_step_limit`` is [0, ∞) in real configs: a bare ``Infinity``
    (Python's json) or transformers 5's ``{"__float__": "Infinity"}``."""
    from powerfit.architectures.hf import read_config_json

    path = tmp_path / "config.json"
    limit = f'"time_step_limit": [0.0, {spelling}]'
    path.write_text(f'{{"model_type": "mamba2", "text_config": {{{limit}}}, {limit}}}')
    data, _ = read_config_json(path)
    assert data["time_step_limit"] == [0.0, float("inf")]
    assert data["text_config"]["time_step_limit"] == [0.0, float("inf")]
    path.write_text('{"model_type": "mamba2", "time_step_limit": [0.0, NaN]}')
    with pytest.raises(DataError, match="NaN is not a number JSON allows"):
        read_config_json(path)
    path.write_text('{"model_type": "mamba2", "hidden_size": {"__float__": "Infinity"}}')
    with pytest.raises(DataError, match="Infinity is not a number JSON allows") as err:
        read_config_json(path)
    assert err.value.column == "hidden_size"


def test_deep_nesting_is_refused_without_recursion(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(GPT2)[:-1] + ', "x": ' + "[" * 1000 + "]" * 1000 + "}")
    with pytest.raises(DataError, match="nested 1001 levels deep"):
        from_hf_config(path)


def test_a_fifo_is_refused_not_read(tmp_path):
    path = tmp_path / "config.json"
    os.mkfifo(path)
    box = {}

    def call():
        try:
            from_hf_config(path)
        except DataError as exc:
            box["error"] = exc

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "from_hf_config blocked on a FIFO"
    assert "not a regular file (a FIFO" in str(box["error"])

"""Tests of powerfit.architectures.fallbacks: reference paths a trace ran are said."""

from __future__ import annotations

import logging

import pytest

pytest.importorskip("transformers.models.qwen3_5")

from powerfit.architectures.fallbacks import fallback_note, reference_fallbacks
from powerfit.architectures.trace import trace_step

from ..conftest import QWEN35_TEXT

QWEN35 = QWEN35_TEXT


def test_every_trace_says_it_timed_a_reference_path(caplog):
    with caplog.at_level(logging.WARNING):
        notes = [
            trace_step(QWEN35, 16, attention="eager", precision="bf16").warnings for _ in range(2)
        ]
    for warnings in notes:  # each trace, not only the process's first (warning_once)
        said = [w for w in warnings if "reference PyTorch implementation" in w]
        assert len(said) == 1
        assert said[0].startswith("causal_conv1d_fn, chunk_gated_delta_rule: traced as")
        assert "upper bound" in said[0]
    # transformers' own line is replaced by powerfit's, not printed beside it
    assert not any("falling back" in r.getMessage() for r in caplog.records)


def test_a_model_without_kernel_packages_says_nothing():
    llama = {
        "model_type": "llama",
        "num_hidden_layers": 2,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "vocab_size": 300,
    }
    warnings = trace_step(llama, 16).warnings
    assert not any("reference PyTorch" in w for w in warnings)


def test_the_collector_keeps_other_log_lines():
    logger = logging.getLogger("transformers.integrations.hub_kernels")
    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    try:
        with reference_fallbacks() as found:
            logger.warning(
                "`f` is falling back to its reference PyTorch implementation because "
                "`pkg` is either not installed"
            )
            logger.warning("something else")
    finally:
        logger.removeHandler(handler)
    assert found == {"f": "pkg"}
    assert seen == ["something else"]
    assert fallback_note({}) is None

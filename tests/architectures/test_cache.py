"""The on-disk cache of traced steps (:mod:`powerfit.architectures.cache`)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

from powerfit.architectures.cache import cache_dir, cache_key, cached_trace

CONFIG = {
    "model_type": "gpt2",
    "n_layer": 2,
    "n_embd": 64,
    "n_head": 4,
    "vocab_size": 300,
    "n_positions": 64,
}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POWERFIT_CACHE_DIR", str(tmp_path))
    return tmp_path / "traces"


def test_second_estimate_reads_the_cache(cache):
    first, hit = cached_trace(CONFIG, 16)
    assert not hit and cache_dir() == cache
    files = list(cache.glob("*.json"))
    assert len(files) == 1
    again, hit = cached_trace(CONFIG, 16)
    assert hit and again == first


def test_key_is_the_content_not_its_spelling():
    reordered = dict(reversed(list(CONFIG.items())))
    assert cache_key(CONFIG, 16, "auto", "fp32") == cache_key(reordered, 16, "auto", "fp32")
    assert cache_key(CONFIG, 16, "auto", "fp32") != cache_key(CONFIG, 32, "auto", "fp32")
    assert cache_key(CONFIG, 16, "auto", "fp32") != cache_key(CONFIG, 16, "auto", "bf16")
    assert cache_key(CONFIG, 16, "auto", "fp32") != cache_key(
        {**CONFIG, "n_layer": 3}, 16, "auto", "fp32"
    )


def test_damaged_or_foreign_entries_are_traced_again(cache):
    trace, _ = cached_trace(CONFIG, 16)
    (path,) = cache.glob("*.json")
    path.write_text("{not json")
    again, hit = cached_trace(CONFIG, 16)
    assert not hit and again == trace
    stored = json.loads(path.read_text())
    stored["trace"]["nodes"][0][2] = "__import__('os').system('x')"
    path.write_text(json.dumps(stored))
    _, hit = cached_trace(CONFIG, 16)
    assert not hit  # validated on load: an unknown operator is refused
    stored = json.loads(path.read_text())
    stored["key"] = "0" * 64  # a file copied under another key
    path.write_text(json.dumps(stored))
    _, hit = cached_trace(CONFIG, 16)
    assert not hit

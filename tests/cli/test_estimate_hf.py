"""Tests of powerfit.cli.estimate_hf: ``powerfit estimate --hf-config``."""

from __future__ import annotations

import json
import math

import pytest

from powerfit.cli import main
from powerfit.steps.latency import bundled_operator_model


def test_cli_estimate_hf_json(tmp_path, capsys, tiny_gpt2):
    from powerfit.cli import estimate_hf

    path = tmp_path / "config.json"
    path.write_text(json.dumps(tiny_gpt2))
    argv = [
        "--hf-config",
        str(path),
        "--gpu",
        "NVIDIA A100 80GB PCIe",
        "--batch-size",
        "2",
        "--seq-len",
        "16",
        "--steps",
        "1000",
        "--grid-intensity",
        "400",
        "--pue",
        "1.2",
        "--json",
    ]
    assert estimate_hf.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["mode"] == "roofline") == (bundled_operator_model("fp32") is None)
    for key in ("step_time_s", "energy_j", "run_energy_kwh", "co2_kg", "operators"):
        assert key in out
    assert out["run_energy_kwh"] == pytest.approx(1000 * out["energy_j"] / 3.6e6)
    assert out["co2_kg"] == pytest.approx(out["run_energy_kwh"] * 400 / 1000 * 1.2)
    lo, hi = out["energy_interval_j"]
    assert lo <= out["energy_j"] <= hi
    # a 0.1 M-parameter model at batch 2 × 16 is far outside the measured steps
    assert out["outside_measured_range"] is True
    assert any("parameters" in w for w in out["warnings"])


def test_cli_estimate_hf_errors(tmp_path, capsys, tiny_gpt2):
    from powerfit.cli import estimate_hf

    path = tmp_path / "config.json"
    path.write_text(json.dumps(tiny_gpt2))
    base = ["--hf-config", str(path), "--gpu", "a100", "--seq-len", "16"]
    assert estimate_hf.main([*base, "--batch-size", "1.5"]) == 1
    assert "--batch-size" in capsys.readouterr().err
    assert estimate_hf.main([*base, "--batch-size", "1", "--steps", "1", "--tokens", "9"]) == 1
    assert "not both" in capsys.readouterr().err


def test_cli_add_arguments_keeps_existing_options():
    import argparse

    from powerfit.cli import estimate_hf

    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-size", dest="batch_size", type=float)
    parser.add_argument("--json", action="store_true")
    estimate_hf.add_arguments(parser)  # no conflict with the options already there
    args = parser.parse_args(["--hf-config", "c.json", "--batch-size", "4", "--specs-only"])
    assert args.batch_size == 4 and args.specs_only and args.optimizer == "adamw"


def test_cli_estimate_amp_bf16_times_products_by_half_precision_laws(tmp_path, capsys, tiny_gpt2):
    from powerfit.cli import estimate_hf
    from powerfit.steps.intervals import half_width_for, load_step_intervals

    path = tmp_path / "config.json"
    path.write_text(json.dumps(tiny_gpt2))
    argv = ["--hf-config", str(path), "--gpu", "h100", "--batch-size", "2", "--seq-len", "16"]
    assert estimate_hf.main([*argv, "--precision", "amp-bf16", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "in-gpu" and out["roofline_share"] == 0.0
    bundle = load_step_intervals()
    widen = float(bundle["widen_outside"]) if bundle else 2.0
    # outside the measured steps (a tiny model), plus the half-precision laws' own evidence
    q_steps = widen * half_width_for("in-gpu", outside=False, roofline=False)
    assert q_steps < out["step_time_half_width"] < q_steps + 0.15


def test_cli_estimate_amp_bf16_flags_roofline_products(tmp_path, capsys, fp32_laws, tiny_gpt2):
    """A GPU without a BF16 peak (the V100) gets no half-precision laws: the roofline."""
    from powerfit.cli import estimate_hf
    from powerfit.steps.intervals import half_width_for, load_step_intervals

    path = tmp_path / "config.json"
    path.write_text(json.dumps(tiny_gpt2))
    argv = ["--hf-config", str(path), "--gpu", "v100", "--batch-size", "2", "--seq-len", "16"]
    assert estimate_hf.main([*argv, "--precision", "amp-bf16", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "in-gpu+roofline"
    assert out["outside_measured_range"] is True
    assert 0.0 < out["roofline_share"] < 1.0
    roofline_ops = ("linear", "bmm", "attention", "attention_bwd")  # and fused attention
    products = sum(t for op, t in out["breakdown_by_op"].items() if op in roofline_ops)
    assert out["attention"] == "eager"  # auto before Ampere: eager attention
    assert out["roofline_share"] * out["step_time_s"] == pytest.approx(products, rel=1e-9)
    bundle = load_step_intervals()
    widen = float(bundle["widen_outside"]) if bundle else 2.0
    roof_q = half_width_for("roofline", outside=False, roofline=False)
    assert out["step_time_half_width"] == pytest.approx(widen * roof_q)
    lo, hi = out["step_time_interval_s"]
    assert lo == pytest.approx(out["step_time_s"] * math.exp(-widen * roof_q))
    assert hi == pytest.approx(out["step_time_s"] * math.exp(widen * roof_q))
    assert any("bf16 matrix products" in w and "roofline" in w for w in out["warnings"])
    assert any("timed by the roofline at the bf16 peak" in w for w in out["warnings"])


LLAMA2_70B = {
    "model_type": "llama",
    "hidden_size": 8192,
    "intermediate_size": 28672,
    "num_hidden_layers": 80,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "vocab_size": 32000,
}


def test_cli_llama2_70b_adamw_does_not_fit_one_80gb_gpu(tmp_path, capsys):
    from powerfit.cli import estimate_hf

    pytest.importorskip("transformers")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA2_70B))
    argv = ["--hf-config", str(path), "--gpu", "a100-sxm4-80gb", "--batch-size", "1"]
    argv += ["--seq-len", "4096", "--precision", "bf16"]
    assert estimate_hf.main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"]["n_parameters"] == 68_976_648_192  # transformers' count
    assert out["fits_in_memory"] is False and out["memory_gb"] > 500
    assert out["attention"] == "sdpa" and out["model"]["graph"] == "traced"
    assert estimate_hf.main(argv) == 0
    captured = capsys.readouterr()
    line = next(w for w in captured.err.splitlines() if "does not fit in memory" in w)
    assert "GB short" in line and "optimizer" in line
    assert "DOES NOT FIT" in captured.out


def test_cli_attention_and_checkpointing_flags(tmp_path, capsys, tiny_gpt2):
    from powerfit.cli import estimate_hf

    pytest.importorskip("transformers")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(tiny_gpt2))
    base = ["--hf-config", str(path), "--gpu", "h100", "--batch-size", "2", "--seq-len", "16"]
    parser = __import__("argparse").ArgumentParser()
    estimate_hf.add_arguments(parser)
    assert parser.parse_args([*base, "--checkpointing"]).checkpointing == "full"
    assert parser.parse_args(base).checkpointing == "none"
    runs = {}
    for extra in ([], ["--checkpointing"], ["--checkpointing", "selective"]):
        assert estimate_hf.main([*base, "--precision", "bf16", "--json", *extra]) == 0
        out = json.loads(capsys.readouterr().out)
        runs[out["checkpointing"]] = out
    assert (
        runs["full"]["step_time_s"]
        > runs["selective"]["step_time_s"]
        > runs["none"]["step_time_s"]
    )
    assert runs["full"]["memory_gb"] < runs["none"]["memory_gb"]
    assert "recompute" in runs["full"]["breakdown_by_phase"]
    # flash in fp32 falls back, with a warning that says so
    assert estimate_hf.main([*base, "--attention", "flash", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["attention"] != "flash"
    assert any("flash attention runs in fp16/bf16 only" in w for w in out["warnings"])


def _two_layer_gpt2(tmp_path, width: int, vocab: int, gpu: str, batch: int, seq: int) -> list:
    """The CLI arguments of a two-layer GPT-2 config written to ``tmp_path``."""
    pytest.importorskip("transformers")
    path = tmp_path / "config.json"
    gpt2 = {"model_type": "gpt2", "n_layer": 2, "n_embd": width, "n_head": 4}
    path.write_text(json.dumps({**gpt2, "vocab_size": vocab, "n_positions": seq}))
    return [
        "--hf-config",
        str(path),
        "--gpu",
        gpu,
        "--batch-size",
        str(batch),
        "--seq-len",
        str(seq),
    ]


def test_cli_attention_kernel_picks_the_fused_attention_law(tmp_path, capsys):
    from powerfit.cli import estimate_hf

    base = _two_layer_gpt2(tmp_path, 256, 512, "a100-sxm4-80gb", 1, 4096)
    base += ["--precision", "bf16", "--attention", "flash", "--json"]
    runs = {}
    for kernel in ("fa2", "triton"):
        assert estimate_hf.main([*base, "--attention-kernel", kernel]) == 0
        runs[kernel] = json.loads(capsys.readouterr().out)
    assert [runs[k]["attention_kernel"] for k in ("fa2", "triton")] == ["fa2", "triton"]
    assert runs["triton"]["step_time_s"] > runs["fa2"]["step_time_s"]
    # text output names the kernel; a kernel outside the choices is refused by argparse
    assert estimate_hf.main([*base[:-1], "--attention-kernel", "triton"]) == 0
    assert "attention: flash (triton kernel)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        estimate_hf.main([*base, "--attention-kernel", "fa3"])
    assert "invalid choice: 'fa3'" in capsys.readouterr().err


def test_cli_loss_kernel_is_in_the_json_and_the_text(tmp_path, capsys):
    from powerfit.cli import estimate_hf

    base = [*_two_layer_gpt2(tmp_path, 128, 5000, "h100", 4, 1024), "--precision", "amp-bf16"]
    runs = {}
    for kernel in ("torch", "fused"):
        assert estimate_hf.main([*base, "--loss-kernel", kernel, "--json"]) == 0
        runs[kernel] = json.loads(capsys.readouterr().out)
    assert [runs[k]["loss_kernel"] for k in ("torch", "fused")] == ["torch", "fused"]
    assert runs["fused"]["memory_gb"] < runs["torch"]["memory_gb"]
    assert runs["fused"]["step_time_s"] < runs["torch"]["step_time_s"]
    assert estimate_hf.main([*base, "--loss-kernel", "fused"]) == 0
    assert "loss: fused" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        estimate_hf.main([*base, "--loss-kernel", "liger"])
    assert "invalid choice: 'liger'" in capsys.readouterr().err


def test_cli_config_transformers_refuses_is_one_line(tmp_path, capsys):
    from powerfit.cli import main

    pytest.importorskip("transformers")
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps({"model_type": "llama", "hidden_size": 60, "num_attention_heads": 7})
    )
    argv = ["estimate", "--hf-config", str(path), "--gpu", "a100", "--batch-size", "1"]
    assert main([*argv, "--seq-len", "8"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1 and "hidden_size" in err[0] and "Traceback" not in err[0]


def test_missing_hf_extra_is_named(monkeypatch):
    import sys

    from powerfit.architectures.trace import MissingExtraError, trace_step

    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingExtraError, match=r"powerfit\[hf\]"):
        trace_step({"model_type": "qwen2"}, 8)


def test_a_gpu_added_with_gpus_add_works_in_estimate_hf_config(tmp_path, capsys, tiny_gpt2):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(tiny_gpt2))
    db = str(tmp_path / "store.db")
    shape = ["--hf-config", str(path), "--batch-size", "2", "--seq-len", "16"]
    assert main(["estimate", *shape, "--gpu", "NVIDIA GeForce RTX 3090", "--db", db]) == 1
    err = capsys.readouterr().err
    assert "powerfit gpus add NAME --peak-flops" in err and "Pass peak_flops" not in err
    spec = ["--peak-flops", "fp32=35.6T,fp16=71T", "--memory-bandwidth", "0.936e12",
            "--tdp", "350", "--sm-count", "82"]  # fmt: skip
    added = ["gpus", "add", "NVIDIA GeForce RTX 3090", *spec, "--db", db]
    assert main(added) == 0
    capsys.readouterr()
    args = ["estimate", *shape, "--gpu", "nvidia geforce rtx 3090", "--db", db, "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["gpu"] == "NVIDIA GeForce RTX 3090"
    assert 0 < out["energy_j"] and out["step_time_s"] > 0


def test_precision_is_explained_in_help_and_output(tmp_path, capsys, tiny_gpt2):
    from powerfit.cli.estimate_hf import PRECISION_MEANING

    path = tmp_path / "config.json"
    path.write_text(json.dumps(tiny_gpt2))
    shape = ["--hf-config", str(path), "--gpu", "h100", "--batch-size", "2", "--seq-len", "16"]
    for precision in ("bf16", "amp-bf16"):
        assert main(["estimate", *shape, "--precision", precision]) == 0
        out = capsys.readouterr().out
        assert f"precision: {precision} = {PRECISION_MEANING[precision]}" in out
    assert "softmax, norms, loss and optimizer in fp32" in PRECISION_MEANING["amp-bf16"]
    with pytest.raises(SystemExit):
        main(["estimate", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "amp-bf16/amp-fp16: automatic mixed precision as torch.autocast" in help_text


def test_cli_power_limit_caps_power_slows_the_step_and_is_refused_outside_the_range(
    tmp_path, capsys
):
    from powerfit.cli import estimate_hf

    gpt = {"model_type": "gpt2", "n_layer": 12, "n_embd": 768, "n_head": 12,
           "vocab_size": 50257, "n_positions": 1024}  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps(gpt))
    base = ["--hf-config", str(path), "--gpu", "h100", "--batch-size", "8", "--seq-len", "1024",
            "--precision", "bf16"]  # fmt: skip
    assert estimate_hf.main([*base, "--json"]) == 0
    free = json.loads(capsys.readouterr().out)
    assert estimate_hf.main([*base, "--power-limit", "300", "--json"]) == 0
    capped = json.loads(capsys.readouterr().out)
    assert capped["power_limit_w"] == 300.0 and free["power_limit_w"] == 700.0
    assert capped["power_w"] <= 300.0 < free["power_w"]
    assert capped["step_time_s"] > free["step_time_s"]
    lo, hi = capped["power_interval_w"]
    assert lo <= capped["power_w"] <= hi <= 300.0
    assert capped["energy_j"] == pytest.approx(capped["power_w"] * capped["step_time_s"])
    trade = capped["power_limit_tradeoff"]
    assert [r["power_limit_w"] for r in trade] == sorted(r["power_limit_w"] for r in trade)
    assert all(r["power_w"] <= r["power_limit_w"] for r in trade)
    assert estimate_hf.main(base) == 0  # the text output prints the watts
    assert "power:" in capsys.readouterr().out
    assert estimate_hf.main([*base, "--power-limit", "900"]) == 1
    assert "200–700 W" in capsys.readouterr().err


def test_cached_estimate_imports_no_torch_transformers_sklearn_scipy_mlflow(tmp_path, tiny_gpt2):
    """A config estimated before is answered from the trace cache: a new process imports
    none of the heavy packages (issue 24's ≤ 0.5 s cold), and answers as the first did."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "config.json"
    path.write_text(json.dumps(tiny_gpt2))
    argv = ["estimate", "--hf-config", str(path), "--gpu", "h100", "--batch-size", "2"]
    argv += ["--seq-len", "16", "--precision", "amp-bf16", "--json"]
    probe = (
        "import sys\n"
        "from powerfit.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "heavy = {m.split('.')[0] for m in sys.modules}\n"
        "heavy &= {'torch', 'transformers', 'sklearn', 'scipy', 'mlflow'}\n"
        "print('heavy:', *sorted(heavy), file=sys.stderr)\n"
        "sys.exit(rc)\n"
    )
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "POWERFIT_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": root}
    runs = [
        subprocess.run(
            [sys.executable, "-c", probe, *argv], capture_output=True, text=True, env=env
        )
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    heavy = [
        [line.split()[1:] for line in r.stderr.splitlines() if line.startswith("heavy:")][-1]
        for r in runs
    ]
    assert {"torch", "transformers"} <= set(heavy[0])  # the first run traced the model
    assert heavy[1] == []
    assert json.loads(runs[1].stdout) == json.loads(runs[0].stdout)

"""``powerfit plan`` and ``estimate --gpus``: JSON, the plot, one-line errors."""

from __future__ import annotations

import json

from powerfit.cli import main

GPT2 = {
    "model_type": "gpt2",
    "n_layer": 4,
    "n_embd": 256,
    "n_head": 8,
    "vocab_size": 1000,
    "n_positions": 512,
}


def test_plan_json_and_plot(tmp_path, capsys):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(GPT2))
    plot = tmp_path / "front.png"
    code = main(
        [
            "plan",
            "--hf-config",
            str(cfg),
            "--tokens",
            "1e9",
            "--seq-len",
            "256",
            "--gpus-available",
            "h100:2",
            "--batch-size",
            "8",
            "--plot",
            str(plot),
            "--loss-kernel",
            "fused",
            "--json",
        ]
    )
    assert code == 0
    options = json.loads(capsys.readouterr().out)
    keys = {"split", "step_time_s", "gpu_hours", "run_energy_kwh", "co2_kg", "fits_in_memory"}
    assert options and keys <= set(options[0])
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_plan_unknown_gpu_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(GPT2))
    code = main(
        [
            "plan",
            "--hf-config",
            str(cfg),
            "--tokens",
            "1e9",
            "--seq-len",
            "256",
            "--gpus-available",
            "tpu:4",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        code == 1 and len(err) == 1 and "unknown GPU 'tpu'" in err[0] and "powerfit gpus" in err[0]
    )


def test_estimate_gpus_refuses_a_bad_split(tmp_path, capsys):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(GPT2))
    code = main(
        [
            "estimate",
            "--hf-config",
            str(cfg),
            "--gpu",
            "h100",
            "--gpus",
            "4",
            "--tp",
            "3",
            "--batch-size",
            "8",
            "--seq-len",
            "256",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].endswith("--gpus 4 is not a multiple of tp·pp = 3·1 = 3")


def test_estimate_gpus_json(tmp_path, capsys):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(GPT2))
    code = main(
        [
            "estimate",
            "--hf-config",
            str(cfg),
            "--gpu",
            "h100",
            "--gpus",
            "4",
            "--tp",
            "2",
            "--batch-size",
            "8",
            "--seq-len",
            "256",
            "--steps",
            "100",
            "--loss-kernel",
            "fused",
            "--json",
        ]
    )
    r = json.loads(capsys.readouterr().out)
    assert code == 0 and r["split"]["dp"] == 2 and r["gpu_hours"] > 0 and "mfu" in r
    assert r["loss_kernel"] == "fused"


def test_parallel_options_need_gpus(tmp_path, capsys):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(GPT2))
    code = main(
        [
            "estimate",
            "--hf-config",
            str(cfg),
            "--gpu",
            "h100",
            "--tp",
            "2",
            "--batch-size",
            "8",
            "--seq-len",
            "256",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err[-1].endswith("--tp need --gpus N (a run over several GPUs)")

"""Tests of powerfit.datasets.vidur2024: Vidur's FP16 operator profiles in SI units, checked."""

from __future__ import annotations

import gzip
import shutil

import pytest


@pytest.fixture(scope="module")
def vidur_home(data_home):
    if not (data_home / "vidur2024" / "compute").is_dir():
        pytest.skip(
            "needs the vidur2024 data set (github.com/microsoft/vidur, laid out as "
            "its README says): set POWERFIT_DATA_HOME to a folder holding "
            "vidur2024/"
        )
    return data_home


def test_vidur_profiles_in_si_units(vidur_home):
    from powerfit.datasets.vidur2024 import (
        VIDUR2024_COLUMNS,
        VIDUR2024_COMMIT,
        fetch_vidur2024,
    )

    data = fetch_vidur2024(vidur_home, gpus=("a40",))
    ops = data.operators
    assert tuple(ops.columns) == VIDUR2024_COLUMNS
    assert data.commit == VIDUR2024_COMMIT
    assert set(ops.gpu) == {"NVIDIA A40"} and set(ops.precision) == {"fp16"}
    # The first row of a40/microsoft__phi-2: attn_pre_proj median 1.4345 ms at 4096 tokens.
    phi = ops[(ops.model == "microsoft/phi-2") & (ops.op == "attn_pre_proj")].iloc[0]
    assert phi.latency_s == pytest.approx(1.4345e-3)
    assert (phi.n_embd, phi.n_expanded_embd, phi.num_tokens, phi.tp) == (2560, 10240, 4096, 1)
    assert not phi.use_gated_mlp
    # Phi-2 has no post-attention norm (parallel attention): no such rows
    assert "post_attention_layernorm" not in set(ops[ops.model == "microsoft/phi-2"].op)
    assert (ops.latency_s > 0).all() and (ops.latency_min_s <= ops.latency_s).all()
    assert set(ops.tp) == {1, 2, 4, 8}


def test_vidur_checksums_and_bad_values(vidur_home, tmp_path):
    from powerfit.datasets.vidur2024 import fetch_vidur2024

    with pytest.raises(FileNotFoundError, match="POWERFIT_DATA_HOME"):
        fetch_vidur2024(tmp_path)
    with pytest.raises(ValueError, match="unknown Vidur device"):
        fetch_vidur2024(vidur_home, gpus=("v100",))
    copy = tmp_path / "vidur2024"
    shutil.copytree(vidur_home / "vidur2024", copy)
    path = copy / "compute" / "a40" / "microsoft__phi-2.mlp.csv.gz"
    path.chmod(0o644)
    text = gzip.decompress(path.read_bytes()).decode()
    lines = text.splitlines()
    header = lines[0].split(",")
    cells = lines[2].split(",")
    cells[header.index("time_stats.attn_pre_proj.median")] = "-1"
    lines[2] = ",".join(cells)
    path.write_bytes(gzip.compress("\n".join(lines).encode() + b"\n"))
    with pytest.raises(ValueError, match="differs from the pinned"):
        fetch_vidur2024(tmp_path, gpus=("a40",))
    # with a matching checksum the bad value is named by file, line and column
    from powerfit.datasets.home import sha256_file

    sums = copy / "SHA256SUMS"
    sums.chmod(0o644)
    relative = "compute/a40/microsoft__phi-2.mlp.csv.gz"
    kept = [line for line in sums.read_text().splitlines() if not line.endswith(relative)]
    sums.write_text("\n".join([*kept, f"{sha256_file(path)}  ./{relative}"]) + "\n")
    with pytest.raises(ValueError, match=r"phi-2.mlp.csv.gz, line 3: column 'time_stats"):
        fetch_vidur2024(tmp_path, gpus=("a40",))

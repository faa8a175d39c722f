"""The split, its refusals, and the parts of a parallel step."""

from __future__ import annotations

import pytest

from powerfit.architectures.hf import from_hf_config
from powerfit.kernels.collectives import Network
from powerfit.steps.parallel import (
    _overlap,
    make_split,
    parallel_step_time,
    sliced_hf_config,
    tensor_parallel_config,
)

GPT2 = {
    "model_type": "gpt2",
    "n_layer": 4,
    "n_embd": 256,
    "n_head": 8,
    "vocab_size": 1000,
    "n_positions": 512,
}


@pytest.fixture(scope="module")
def cfg():
    return from_hf_config(GPT2)


def test_split_arithmetic(cfg):
    s = make_split(cfg, 16, 64, tp=2, pp=2, micro_batch=4)
    assert (s.dp, s.micro_batches) == (4, 4)
    assert s.bubble_fraction == pytest.approx(1 / 5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(n_gpus=12, batch_size=8, tp=8), "--gpus 12 is not a multiple of tp·pp = 8·1"),
        (dict(n_gpus=3, batch_size=3, tp=3), "--tp 3 does not divide the 8 attention heads"),
        (dict(n_gpus=8, batch_size=8, pp=8), "--pp 8 exceeds the model's 4 layers"),
        (dict(n_gpus=4, batch_size=6), "--batch-size 6 does not divide into dp = 4"),
        (dict(n_gpus=2, batch_size=8, micro_batch=3), "does not divide into micro-batches of 3"),
    ],
)
def test_impossible_splits_are_refused(cfg, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_split(cfg, **kwargs)


def test_overlap_hides_what_fits_in_the_window():
    assert _overlap([0.1] * 10, 10.0) == pytest.approx(0.1)  # only the last bucket
    assert _overlap([2.0] * 10, 1.0) == pytest.approx(20.0 + 0.1 - 1.0)


def test_parts_of_a_step(cfg):
    net = Network("a100-sxm4-80gb", 8, "ib-hdr")
    one = parallel_step_time(cfg, "a100-sxm4-80gb", make_split(cfg, 1, 8), 256, network=net)
    dp = parallel_step_time(cfg, "a100-sxm4-80gb", make_split(cfg, 4, 32), 256, network=net)
    tp = parallel_step_time(cfg, "a100-sxm4-80gb", make_split(cfg, 4, 8, tp=4), 256, network=net)
    pp = parallel_step_time(
        cfg, "a100-sxm4-80gb", make_split(cfg, 4, 8, pp=4, micro_batch=1), 256, network=net
    )
    assert one.dp_comm_s == 0 and one.tp_comm_s == 0 and one.bubble_s == 0
    assert dp.dp_comm_s > 0 and 0 <= dp.dp_exposed_s <= dp.dp_comm_s
    assert tp.tp_comm_s > 0 and tp.compute_s < one.compute_s
    assert pp.bubble_s > 0 and pp.pp_p2p_s > 0
    for step in (one, dp, tp, pp):
        assert step.step_time_s >= step.pipeline_s > 0
    zero3 = parallel_step_time(
        cfg, "a100-sxm4-80gb", make_split(cfg, 4, 32, sharding="full"), 256, network=net
    )
    assert zero3.dp_comm_s > dp.dp_comm_s  # all-gathers twice and reduce-scatters


LLAMA = {
    "model_type": "llama",
    "hidden_size": 512,
    "intermediate_size": 1376,
    "num_attention_heads": 8,
    "num_hidden_layers": 4,
    "num_key_value_heads": 8,
    "max_position_embeddings": 1024,
    "vocab_size": 1000,
    "tie_word_embeddings": False,
}


def test_tensor_parallel_slices():
    llama = from_hf_config(LLAMA)
    half = tensor_parallel_config(llama, 2)
    assert (half.n_heads, half.d_ff, half.d_model) == (4, 688, 512)
    assert half.n_parameters < 0.55 * llama.n_parameters
    with pytest.raises(ValueError, match="--tp 3 does not divide the 8 attention heads"):
        tensor_parallel_config(llama, 3)
    sliced = sliced_hf_config(LLAMA, 2)
    heads, width = sliced["num_attention_heads"], sliced["head_dim"]
    assert (heads, width, sliced["vocab_size"]) == (4, 64, 500)
    assert sliced_hf_config(GPT2, 2) is None  # GPT-2's head width follows its head count


def test_a_multimodal_config_is_sliced_in_its_text_config():
    text = {
        "model_type": "qwen3_5_text",
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 128,
        "vocab_size": 300,
        "linear_num_key_heads": 2,
        "linear_num_value_heads": 4,
    }
    sliced = sliced_hf_config({"model_type": "qwen3_5", "text_config": text}, 2)
    part = sliced["text_config"]
    assert (part["num_attention_heads"], part["linear_num_key_heads"]) == (2, 1)
    assert (part["linear_num_value_heads"], part["head_dim"], part["vocab_size"]) == (2, 16, 150)
    with pytest.raises(ValueError, match="--tp 4 does not divide the 2 linear_num_key_heads"):
        sliced_hf_config({"model_type": "qwen3_5", "text_config": text}, 4)
    moe = {"model_type": "qwen3_5_moe", "text_config": {**text, "model_type": "qwen3_5_moe_text"}}
    assert sliced_hf_config(moe, 2) is None


def test_traced_slice_is_the_single_gpu_graph_and_shrinks_with_tp():
    pytest.importorskip("transformers")
    llama = from_hf_config(LLAMA)
    net = Network("h100", 8)
    kw = dict(precision="amp-bf16", network=net, hf_config=LLAMA)
    one = parallel_step_time(llama, "h100", make_split(llama, 1, 4), 512, **kw)
    assert "attention" in set(one.graph.op)  # traced: SDPA's fused kernel in half precision
    assert not any("hand-written" in n for n in one.notes)
    tp = parallel_step_time(llama, "h100", make_split(llama, 2, 4, tp=2), 512, **kw)
    assert tp.compute_s < one.compute_s and tp.tp_comm_s > 0
    gpt2 = parallel_step_time(
        from_hf_config(GPT2),
        "h100",
        make_split(from_hf_config(GPT2), 2, 4, tp=2),
        256,
        precision="amp-bf16",
        network=net,
        hf_config=GPT2,
    )
    assert any("hand-written" in n for n in gpt2.notes)


def test_without_the_loss_no_row_of_the_models_own_scope_is_left():
    pytest.importorskip("transformers")
    from powerfit.steps.parallel import compute_profile

    for data in (LLAMA, GPT2):  # the loss runs in LlamaForCausalLM's scope, GPT-2's in none
        model = from_hf_config(data)
        with_loss = compute_profile(model, "a100", 1, 2, 256, precision="amp-bf16", hf_config=data)
        without = compute_profile(
            model, "a100", 1, 2, 256, precision="amp-bf16", hf_config=data, loss=False
        )
        roots = {name.split(".")[0] for name in without.graph.name}
        assert not roots & {"Global", "LlamaForCausalLM", "GPT2LMHeadModel"}
        assert without.head_s < with_loss.head_s
    gpt2 = from_hf_config(GPT2)
    sliced = compute_profile(
        gpt2, "a100", 2, 2, 256, precision="amp-bf16", hf_config=GPT2, loss_kernel="fused"
    )
    assert any("--loss-kernel fused needs a traced step" in n for n in sliced.notes)

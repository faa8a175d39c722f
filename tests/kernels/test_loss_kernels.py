"""Which kernels run a traced step's loss (:mod:`powerfit.kernels.loss_kernels`)."""

from __future__ import annotations

import pytest

from powerfit.kernels.loss_kernels import LOSS_KERNELS, check_loss_kernel, fuse_loss_nodes

V = 1000  # vocabulary
ROWS, ROWS3 = [64, 0, 0, 0, V, 0, 0, 0], [96, 0, 0, 0, V, 0, 0, 0]  # 2 and 3 sequences of 32


def _node(name, phase, op="addu", dims2=ROWS, dims3=ROWS3):
    return [name, phase, op, "elt", list(dims2), list(dims3), 1.0, ""]


NODES = [
    _node("lm_head.mm", "forward", "linear"),
    _node("LlamaForCausalLM._to_copy", "forward"),
    _node("LlamaForCausalLM._log_softmax", "forward", "softmax"),
    _node("LlamaForCausalLM.nll_loss_forward", "forward"),
    _node("LlamaForCausalLM.nll_loss_backward", "backward"),
    _node("LlamaForCausalLM._log_softmax_backward_data", "backward", "softmax"),
    _node("LlamaForCausalLM._to_copy", "backward"),
    # a cast over another width (a mask, say) is not the loss's
    _node("LlamaForCausalLM._to_copy", "forward", dims2=[2, 0, 0, 0, 32, 0, 0, 0]),
]


def test_the_kernels_and_their_check():
    assert LOSS_KERNELS == ("torch", "fused")
    assert check_loss_kernel("fused") == "fused"
    with pytest.raises(ValueError, match="loss kernel must be one of torch, fused, got 'liger'"):
        check_loss_kernel("liger")


def test_the_loss_over_the_vocabulary_becomes_one_row_each_way():
    fused, found = fuse_loss_nodes(NODES, "LlamaForCausalLM")
    assert found
    names = [n[0] for n in fused]
    assert names == [
        "lm_head.mm",
        "LlamaForCausalLM._to_copy",  # the mask's cast, kept
        "LlamaForCausalLM.fused_cross_entropy",
        "LlamaForCausalLM.fused_cross_entropy_backward",
    ]
    fwd, bwd = fused[2], fused[3]
    assert (fwd[1], bwd[1]) == ("forward", "backward")
    assert fwd[4] == ROWS and fwd[5] == ROWS3 and fwd[3] == "elt" and fwd[6] == 1.0


def test_nodes_without_a_loss_are_unchanged():
    body = [n for n in NODES if "softmax" not in n[0] and "nll" not in n[0]]
    assert fuse_loss_nodes(body, "LlamaForCausalLM") == (body, False)
    # the loss of another scope (a module's own) is not transformers' loss
    assert fuse_loss_nodes(NODES, "GPT2LMHeadModel")[1] is False

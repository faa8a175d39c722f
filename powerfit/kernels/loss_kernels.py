"""Which kernels run a traced step's cross-entropy loss (``--loss-kernel``): names and checks.

``torch`` is transformers' loss as traced (the logits cast to FP32, log-softmax and
NLL, and their backward); ``fused`` one kernel each way on the logits in the step's
element-wise precision, saving only a log-sum-exp per token (flash-attn's
``CrossEntropyLoss``, llm-foundry's default ``fused_crossentropy``, Liger's).
:func:`fuse_loss_nodes` rewrites a traced step's nodes for the latter. Light to import
(the command line reads :data:`LOSS_KERNELS` for its choices): no NumPy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HAND_WRITTEN_LOSS_NOTE", "LOSS_KERNELS", "check_loss_kernel", "fuse_loss_nodes"]

#: Kernels of a traced step's cross-entropy loss over the vocabulary: ``torch``
#: (transformers' loss as traced: the logits cast to FP32, log-softmax and NLL, and
#: their backward) or ``fused`` (one kernel each way on the logits in the step's
#: element-wise precision, saving only a log-sum-exp per token: flash-attn's
#: ``CrossEntropyLoss``, llm-foundry's default ``fused_crossentropy``, Liger's).
LOSS_KERNELS = ("torch", "fused")

#: The warning of a fused loss asked of a hand-written graph (no traced loss to replace).
HAND_WRITTEN_LOSS_NOTE = "--loss-kernel fused needs a traced step: the hand-written loss is timed"

#: The aten operators of transformers' cross-entropy over the logits.
_LOSS_OPS = frozenset(
    {"_to_copy", "_log_softmax", "nll_loss_forward", "nll_loss_backward",
     "_log_softmax_backward_data"}
)  # fmt: skip


def check_loss_kernel(loss_kernel: str) -> str:
    """``loss_kernel`` if it is one of :data:`LOSS_KERNELS`, else ValueError naming them."""
    if loss_kernel not in LOSS_KERNELS:
        raise ValueError(
            f"loss kernel must be one of {', '.join(LOSS_KERNELS)}, got {loss_kernel!r}"
        )
    return loss_kernel


def fuse_loss_nodes(nodes: list[list[Any]], model_class: str) -> tuple[list[list[Any]], bool]:
    """A traced step's nodes with transformers' cross-entropy replaced by a fused one.

    The loss runs outside every module (scope ``Global`` or the model's class): its
    rows over the vocabulary (the width of its ``_log_softmax``) become one
    ``softmax``-like row forward (``fused_cross_entropy``: the logits read, a
    log-sum-exp per token written) and one backward (``fused_cross_entropy_backward``:
    the logits read, their gradient written), in the element-wise precision.

    Returns
    -------
    (list, bool)
        The nodes, and whether a loss was found (unchanged nodes when not).
    """
    roots = {"Global", model_class}

    def parts(node: list[Any]) -> tuple[str, str]:
        root, _, op = str(node[0]).partition(".")
        return root, op

    soft = [n for n in nodes if n[1] == "forward" and parts(n)[1] == "_log_softmax"]
    soft = [n for n in soft if parts(n)[0] in roots]
    if not soft:
        return nodes, False
    ref = soft[0]
    width = ref[4][4]
    root = parts(ref)[0]

    def is_loss(n: list[Any]) -> bool:
        r, op = parts(n)
        return r in roots and op in _LOSS_OPS and n[4][4] == width and n[1] != "recompute"

    kept = [n for n in nodes if not is_loss(n)]
    for suffix, phase in (("", "forward"), ("_backward", "backward")):
        name = f"{root}.fused_cross_entropy{suffix}"
        kept.append([name, phase, "softmax", "elt", list(ref[4]), list(ref[5]), 1.0, ""])
    return kept, True

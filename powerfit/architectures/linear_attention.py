"""Linear attention and state-space scans as their fused kernels run them.

Several model families compute their sequence mixing with an optional GPU kernel
package when it is installed (its documented training setup), and otherwise with a
reference PyTorch implementation in transformers: the gated delta rule of Qwen 3.5,
Qwen3-Next and OLMo hybrid (flash-linear-attention, FLA), the SSD scan of Mamba 2 and
its hybrids (mamba-ssm's ``mamba_chunk_scan_combined``), the selective scan of Mamba 1
and its kin (mamba-ssm's ``selective_scan_fn``). On the meta device it is always the
reference, whose loops and temporaries are not what runs. :func:`fused_linear_attention`
swaps in, while a step is traced, a chunked form with the same inputs and outputs and
the kernels' work, so that the operator laws time it as products and passes of those
shapes (:data:`GLOBALS`):

* :func:`chunked_gated_delta_rule` — FLA's chunked form (Yang et al., *Gated Delta
  Networks*, ICLR 2025) over the ``B·H·T/C`` chunks of ``C`` tokens: intra-chunk
  ``K_β·Kᵀ`` and ``Q·Kᵀ`` (C×dk×C), the decay mask applied element-wise, the WY
  transform ``A·V_β`` (C×C×dv) and ``A·K_β`` (C×C×dk); inter-chunk each chunk's state
  ``Kᵀ·U`` (dk×C×dv), accumulated over the chunks (a cumulative sum: FLA's sequential
  ``chunk_fwd_h``), the corrected values ``U − W·S`` (C×dk×dv) and the output
  ``Q·S + (Q·Kᵀ)·V_new`` (C×dk×dv, C×C×dv);
* :func:`chunked_ssd_scan` — Mamba 2's SSD in chunks (Dao & Gu, ICML 2024);
* :func:`selective_scan` — Mamba 1's scan, one memory-bound pass.

The backward is autograd's of these (about twice the forward's products). The numbers
are not the rules' (nothing runs on the meta device); the shapes, FLOPs and bytes are.
These are estimates of the kernels from their algorithms, with no measurement of them
behind them; a trace says so (:data:`LINEAR_ATTENTION_NOTE`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "GLOBALS",
    "LINEAR_ATTENTION_NOTE",
    "chunked_gated_delta_rule",
    "chunked_ssd_scan",
    "fused_linear_attention",
    "selective_scan",
]

#: The warning of a trace whose linear attention was timed as the kernels' chunked form.
LINEAR_ATTENTION_NOTE = (
    "linear attention ({names}): timed as the fused kernels' chunked form "
    "(flash-linear-attention's gated delta rule, mamba-ssm's SSD scan: batched products "
    "over chunks of tokens, from their algorithms) with no measurement of those kernels "
    "behind it; --attention eager times transformers' reference PyTorch path instead"
)


def _chunk_grid(tokens: int, chunk_size: int) -> tuple[int, int, int]:
    """(chunk length, chunks, padding tokens) of a sequence cut into chunks."""
    c = int(chunk_size)
    n = -(-tokens // c)
    return c, n, n * c - tokens


def _final_state(state: Any, initial: Any) -> Any:
    """A scan's last state in FP32, the initial state added (as the kernels return it)."""
    import torch

    state = state.to(torch.float32)
    return state if initial is None else state + initial.to(torch.float32)


def chunked_gated_delta_rule(
    query: Any,
    key: Any,
    value: Any,
    g: Any,
    beta: Any,
    chunk_size: int = 64,
    initial_state: Any = None,
    output_final_state: bool = False,
    use_qk_l2norm_in_kernel: bool = False,
    **kwargs: Any,
) -> tuple[Any, Any]:
    """The work of FLA's ``chunk_gated_delta_rule`` (same signature and output shapes).

    ``query``, ``key``: [B, T, H_k, d_k]; ``value``: [B, T, H_v, d_v]; ``g``, ``beta``:
    [B, T, H_v]. Returns the output [B, T, H_v, d_v] in ``query``'s dtype and, with
    ``output_final_state``, the state [B, H_v, d_k, d_v] (FP32).
    """
    import torch

    dtype = query.dtype
    b, t, hk = key.shape[:3]
    hv, dv = value.shape[-2:]
    c, n, pad = _chunk_grid(t, chunk_size)

    def chunks(x: Any, heads: int, as_type: Any = dtype) -> Any:  # [B,T,H,d] → [B,H_v,n,C,d]
        x = x.transpose(1, 2)
        if heads != hv:
            x = x.repeat_interleave(hv // heads, dim=1)
        if pad:
            x = torch.nn.functional.pad(x, (0, 0, 0, pad))
        return x.reshape(b, hv, n, c, x.shape[-1]).to(as_type)

    q, k, v = chunks(query, hk), chunks(key, hk), chunks(value, hv)
    gates = chunks(torch.stack((g, beta), dim=-1), hv, torch.float32)  # [B, H_v, n, C, 2]
    decay = gates[..., 0].cumsum(-1)
    mask = (decay.unsqueeze(-1) - decay.unsqueeze(-2)).exp().to(dtype)  # [.., C, C]
    k_beta = k * gates[..., 1:].to(dtype)
    v_beta = v * gates[..., 1:].to(dtype)
    a = (k_beta @ k.transpose(-1, -2)) * mask
    attn = (q @ k.transpose(-1, -2)) * mask
    u, w = a @ v_beta, a @ k_beta
    state = (k.transpose(-1, -2) @ u).cumsum(2)  # [B, H_v, n, d_k, d_v]
    v_new = u - w @ state
    out = q @ state + attn @ v_new
    out = out.reshape(b, hv, n * c, dv)[:, :, :t].transpose(1, 2).contiguous()
    final = state[:, :, -1] if output_final_state else None
    return out, None if final is None else _final_state(final, initial_state)


def chunked_ssd_scan(
    hidden_states: Any,
    dt: Any,
    A: Any,
    B: Any,
    C: Any,
    chunk_size: int,
    D: Any = None,
    dt_bias: Any = None,
    initial_states: Any = None,
    dt_softplus: bool = False,
    dt_limit: tuple[float, float] = (0.0, float("inf")),
    return_final_states: bool = False,
    **kwargs: Any,
) -> Any:
    """The work of mamba-ssm's ``mamba_chunk_scan_combined`` (Mamba 2's SSD; same
    signature and output shapes as transformers' ``mamba2_chunk_scan``).

    ``hidden_states``: [B, T, H, P]; ``dt``: [B, T, H]; ``A``: [H]; ``B``, ``C``:
    [B, T, G, N]. Per chunk of ``C`` tokens (Dao & Gu, *Transformers are SSMs*, ICML
    2024), with the heads of a group side by side (they share ``B`` and ``C``, as the
    kernels' blocks do) and each head's decay applied to its inputs and outputs
    element-wise: ``C·Bᵀ`` per group (C×N×C, causal), the diagonal block
    ``(C·Bᵀ)·X`` (C×C×P per head), each chunk's state ``Bᵀ·X`` (N×C×P), accumulated over
    the chunks, and its read ``C·S`` (C×N×P). Returns the output [B, T, H, P] (and the
    final state [B, H, P, N] with ``return_final_states``).
    """
    import torch

    x = hidden_states
    dtype = x.dtype
    b, t, h, p = x.shape
    g, n_state = B.shape[2], B.shape[3]
    c, n, pad = _chunk_grid(t, chunk_size)
    if dt_bias is not None:
        dt = dt + dt_bias.to(dt.dtype)
    if dt_softplus:
        dt = torch.nn.functional.softplus(dt)
    dt = dt.clamp(min=dt_limit[0], max=dt_limit[1])

    def chunks(v: Any) -> Any:  # [B, T, ...] → [B, n, C, ...]
        if pad:
            v = torch.nn.functional.pad(v, (0, 0) * (v.dim() - 2) + (0, pad))
        return v.reshape(b, n, c, *v.shape[2:])

    def by_group(v: Any) -> Any:  # [B, n, C, H, P] → [B, G, n, C, (H/G)·P]
        return v.reshape(b, n, c, g, h // g * p).permute(0, 3, 1, 2, 4)

    cum = chunks(dt * A.to(dt.dtype)).to(torch.float32).cumsum(2)  # [B, n, C, H]
    xs = chunks(x * dt.unsqueeze(-1).to(dtype))  # [B, n, C, H, P]
    bs, cs = (chunks(v).permute(0, 3, 1, 2, 4).to(dtype) for v in (B, C))  # [B, G, n, C, N]
    inside = by_group(xs * (-cum).exp().unsqueeze(-1).to(dtype))
    to_end = by_group(xs * (cum[:, :, -1:] - cum).exp().unsqueeze(-1).to(dtype))
    cb = (cs @ bs.transpose(-1, -2)).tril()  # [B, G, n, C, C]
    state = (bs.transpose(-1, -2) @ to_end).cumsum(2)  # [B, G, n, N, (H/G)·P]
    y = cb @ inside + cs @ state  # [B, G, n, C, (H/G)·P]
    y = y.permute(0, 2, 3, 1, 4).reshape(b, n, c, h, p) * cum.exp().unsqueeze(-1).to(dtype)
    out = y.reshape(b, n * c, h, p)[:, :t]
    if D is not None:
        out = out + x * D.to(dtype)[:, None]
    out = out.contiguous()
    if not return_final_states:
        return out
    final = state[:, :, -1].reshape(b, g, n_state, h // g, p).permute(0, 1, 3, 4, 2)
    return out, _final_state(final.reshape(b, h, p, n_state), initial_states)


def selective_scan(
    hidden_states: Any,
    dt: Any,
    A: Any,
    B: Any,
    C: Any,
    D: Any = None,
    z: Any = None,
    delta_bias: Any = None,
    delta_softplus: bool = False,
    return_last_state: bool = False,
    **kwargs: Any,
) -> Any:
    """The work of mamba-ssm's ``selective_scan_fn`` (Mamba 1; same signature and output
    shapes as transformers' ``mamba_selective_scan``).

    ``hidden_states``, ``dt``, ``z``: [B, D, T]; ``A``: [D, N]; ``B``, ``C``: [B, N, T].
    The kernel reads its inputs once per block of channels and keeps each channel's N
    states in registers while it scans the tokens: memory-bound, its traffic that of
    its inputs and output. Here: one product of ``B`` and ``C`` over the states and a few
    element-wise passes over [B, D, T] (no [B, D, T, N] tensor, which the reference's
    Python loop over the tokens writes token by token). Returns [B, D, T] (and the last
    state [B, D, N] with ``return_last_state``).
    """
    import torch

    u = hidden_states
    dtype = u.dtype
    if delta_bias is not None:
        dt = dt + delta_bias.to(dt.dtype)[..., None]
    if delta_softplus:
        dt = torch.nn.functional.softplus(dt)
    y = u * dt.to(dtype) * (B * C).sum(1, keepdim=True).to(dtype)
    if D is not None:
        y = y + u * D.to(dtype)[None, :, None]
    if z is not None:
        y = y * torch.nn.functional.silu(z)
    if not return_last_state:
        return y
    return y, (u * dt.to(dtype))[:, :, -1:] * A.to(dtype)[None]


#: The module globals of transformers' modeling files swapped while tracing: by name,
#: the kernel they stand for and the chunked form put in their place.
GLOBALS: dict[str, tuple[str, Any]] = {
    "torch_chunk_gated_delta_rule": ("chunk_gated_delta_rule", chunked_gated_delta_rule),
    "mamba2_chunk_scan": ("mamba_chunk_scan_combined", chunked_ssd_scan),
    "mamba_selective_scan": ("selective_scan_fn", selective_scan),
}


@contextmanager
def fused_linear_attention(model: Any, enabled: bool = True) -> Iterator[list[str]]:
    """Trace ``model`` with the chunked forms in place of transformers' references (the
    modeling files' globals named in :data:`GLOBALS`); yields the kernels they stand for
    (empty for a model without linear attention, or not ``enabled``)."""
    modules = {sys.modules.get(type(m).__module__) for m in model.modules()} if enabled else ()
    swapped: list[tuple[Any, str, Any]] = []
    try:
        for mod in modules:
            for name, (_kernel, chunked) in GLOBALS.items():
                if mod is not None and callable(getattr(mod, name, None)):
                    swapped.append((mod, name, getattr(mod, name)))
                    setattr(mod, name, chunked)
        yield sorted({GLOBALS[name][0] for _, name, _ in swapped})
    finally:
        for mod, name, original in reversed(swapped):
            setattr(mod, name, original)

"""Llama 2's published GPU-hours against ``powerfit``'s runs over many GPUs, and plan's speed.

Touvron et al. (2023), Table 2: pretraining on 2 T tokens, 4096-token sequences, a global
batch of 4 M tokens (1024 sequences), A100-80GB GPUs: 7B 184,320 GPU-hours, 13B
368,640, 70B 1,720,320. Meta did not publish the split; assumed here (``SPLITS``):
1024 A100-SXM4-80GB, 8 per node, 200 Gb/s per GPU between nodes (``roce-200g``; Meta's
RSC and production clusters), mixed BF16, AdamW, SDPA's fused attention (``auto``, as
``estimate --hf-config``), FSDP full sharding (ZeRO-3) with no tensor or pipeline
parallelism, micro-batch 1, and the least activation checkpointing (none, selective,
full) whose per-GPU memory fits 80 GB: the same rule for the three sizes (``SPLITS``;
the other modes are printed too, and ``--split-70b`` tries Megatron-style splits of the
70B). Goal: within ±25 %. Then ``plan`` for a 13B model over two GPU kinds (≤ 60 s).

    POWERFIT_DATA_HOME=../shared/data .venv/bin/python experiments/parallel_llama2.py
"""

from __future__ import annotations

import argparse
import json
import time

from powerfit.plan.planner import plan_training
from powerfit.plan.runs import estimate_parallel_training

#: Llama 2's configs (Hugging Face ``config.json`` fields that set the cost).
_BASE = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "vocab_size": 32000,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
}
LLAMA2 = {
    "7B": {
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_attention_heads": 32,
        "num_hidden_layers": 32,
        "num_key_value_heads": 32,
    },
    "13B": {
        "hidden_size": 5120,
        "intermediate_size": 13824,
        "num_attention_heads": 40,
        "num_hidden_layers": 40,
        "num_key_value_heads": 40,
    },
    "70B": {
        "hidden_size": 8192,
        "intermediate_size": 28672,
        "num_attention_heads": 64,
        "num_hidden_layers": 80,
        "num_key_value_heads": 8,
    },
}
PUBLISHED_GPU_HOURS = {"7B": 184_320, "13B": 368_640, "70B": 1_720_320}
SPLITS = {
    "7B": {"tp": 1, "pp": 1, "micro_batch": 1, "sharding": "full"},
    "13B": {"tp": 1, "pp": 1, "micro_batch": 1, "sharding": "full"},
    "70B": {"tp": 1, "pp": 1, "micro_batch": 1, "sharding": "full"},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, default=1024)
    parser.add_argument(
        "--checkpointing",
        default="none,selective,full",
        help="activation checkpointing modes to report, comma-separated (default all three)",
    )
    parser.add_argument(
        "--split-70b",
        default=None,
        help="the 70B's split instead, as tp,pp,sharding (e.g. 8,4,optimizer)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    splits = dict(SPLITS)
    if args.split_70b:
        tp, pp, sharding = args.split_70b.split(",")
        splits["70B"] = {"tp": int(tp), "pp": int(pp), "micro_batch": 1, "sharding": sharding}
    for name, fields in LLAMA2.items():
        chosen = None
        for ckpt in args.checkpointing.split(","):
            r = estimate_parallel_training(
                {**_BASE, **fields},
                "a100-sxm4-80gb",
                args.gpus,
                1024,
                4096,
                precision="amp-bf16",
                interconnect="roce-200g",
                checkpointing=ckpt,
                tokens=2e12,
                **splits[name],
            )
            pick = chosen is None and bool(r["fits_in_memory"])
            chosen = ckpt if pick else chosen
            err = 100 * (r["gpu_hours"] - PUBLISHED_GPU_HOURS[name]) / PUBLISHED_GPU_HOURS[name]
            rows.append(
                {
                    "model": name,
                    "split": r["split"],
                    "checkpointing": ckpt,
                    "assumed": pick,
                    "attention": r["attention"],
                    "step_time_s": r["step_time_s"],
                    "mfu": r["mfu"],
                    "gpu_hours": r["gpu_hours"],
                    "published": PUBLISHED_GPU_HOURS[name],
                    "error_pct": err,
                    "memory_gb": r["memory"]["memory_gb"],
                    "fits_in_memory": r["fits_in_memory"],
                    "run_energy_mwh": r["run_energy_kwh"] / 1e3,
                }
            )
            print(
                f"{'*' if pick else ' '} Llama 2 {name}, checkpointing {ckpt}: "
                f"{r['gpu_hours']:,.0f} GPU-hours against "
                f"{PUBLISHED_GPU_HOURS[name]:,} published ({err:+.1f} %), MFU "
                f"{100 * r['mfu']:.0f} %, step {r['step_time_s']:.2f} s, "
                f"{r['memory']['memory_gb']:.0f} GB per GPU (fits {r['fits_in_memory']}), "
                f"{r['run_energy_kwh'] / 1e3:,.0f} MWh (GPUs only), attention {r['attention']}"
            )
    print("* the assumed run: the least checkpointing that fits")
    start = time.perf_counter()
    plan = plan_training({**_BASE, **LLAMA2["13B"]}, 2e12, 4096, "h100:16,a100-sxm4-80gb:32")
    seconds = time.perf_counter() - start
    best = plan["options"][0]
    print(
        f"plan, 13B over h100:16 and a100-sxm4-80gb:32: {seconds:.1f} s, "
        f"{len(plan['options'])} options fit ({plan['considered']} considered), all "
        f"fits_in_memory={all(o['fits_in_memory'] for o in plan['options'])}; best by energy: "
        f"{best['split']['n_gpus']} × {best['gpu']} tp {best['split']['tp']} "
        f"pp {best['split']['pp']} "
        f"{best['split']['sharding']}, {best['run_energy_kwh'] / 1e3:,.0f} MWh"
    )
    if args.json:
        print(json.dumps({"llama2": rows, "plan_seconds": seconds}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""FP32 step time of a traced graph against the hand-written graph (issue 24).

The hand-written graphs of :mod:`powerfit.architectures.model` are what the measured
FP32 steps calibrate (NeuSight's A100 and V100 steps); the traced graph of the same
``config.json`` (:mod:`powerfit.architectures.trace`, eager attention in FP32) should
time the same. Prints the ratio traced / hand-written of the estimated step time
(:func:`powerfit.training.estimate_training`, calibrated in-GPU mode) and both
parameter counts, for BERT-large, GPT-2 large, OPT-1.3B and Llama 7B on the A100 and
V100, batch 4.

Run: ``python experiments/trace_vs_hand.py``.
"""

from __future__ import annotations

import warnings

from powerfit.architectures.hf import from_hf_config
from powerfit.training import estimate_training

CONFIGS = {
    "gpt2-large": {
        "model_type": "gpt2",
        "n_layer": 36,
        "n_embd": 1280,
        "n_head": 20,
        "vocab_size": 50257,
        "n_positions": 1024,
    },
    "opt-1.3b": {
        "model_type": "opt",
        "num_hidden_layers": 24,
        "hidden_size": 2048,
        "ffn_dim": 8192,
        "num_attention_heads": 32,
        "vocab_size": 50272,
        "word_embed_proj_dim": 2048,
        "max_position_embeddings": 2048,
    },
    "bert-large": {
        "model_type": "bert",
        "num_hidden_layers": 24,
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_attention_heads": 16,
        "vocab_size": 30522,
    },
    "llama-7b": {
        "model_type": "llama",
        "num_hidden_layers": 32,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_attention_heads": 32,
        "vocab_size": 32000,
    },
}


def main() -> int:
    warnings.simplefilter("ignore")
    print("model        gpu   hand [s]  traced [s]  traced/hand  parameters (hand, traced)")
    for name, config in CONFIGS.items():
        seq = 512 if name == "bert-large" else 1024
        for gpu in ("a100", "v100"):
            hand = estimate_training(from_hf_config(config), gpu, 4, seq)
            traced = estimate_training(config, gpu, 4, seq)
            print(
                f"{name:12s} {gpu:5s} {hand['step_time_s']:9.4f} {traced['step_time_s']:11.4f} "
                f"{traced['step_time_s'] / hand['step_time_s']:12.3f}  "
                f"{hand['model']['n_parameters']}, {traced['model']['n_parameters']}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

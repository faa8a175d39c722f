"""Latency laws of the GPU operators a training step runs (matrix products, memory-bound).

What one call of an operator counts (:mod:`~powerfit.kernels.counts`: kinds, FLOP,
bytes), the laws and their fit (:mod:`~powerfit.kernels.laws`), their transfer to GPUs
never measured (:mod:`~powerfit.kernels.transfer`), the roofline
(:mod:`~powerfit.kernels.roofline`) and the scikit-learn estimator that holds them per
(GPU, operator), with the bundled laws (:mod:`~powerfit.kernels.model`); the FP16/BF16
laws fitted on Vidur's profiles and their evidence (:mod:`~powerfit.kernels.half`); fused
attention's counts, laws per GPU and activation memory
(:mod:`~powerfit.kernels.attention`), and which kernel runs it
(:mod:`~powerfit.kernels.attention_kernels`); which kernels run the loss
(:mod:`~powerfit.kernels.loss_kernels`).
"""

"""The published method, as Mayaki & Charpenay (ECAI 2025) state it, and its step-energy model.

Per-operation FLOPs of Transformer, LSTM and GRU layers (:mod:`~powerfit.paper.flops`),
the hardware-efficiency power laws (:mod:`~powerfit.paper.laws`), the energy regression
(:mod:`~powerfit.paper.energy`), durations from laws and the pipeline that chains them
(:mod:`~powerfit.paper.durations`), the published coefficient sets
(:mod:`~powerfit.paper.profiles`), and the training-step energy model built on them:
its features (:mod:`~powerfit.paper.step_features`), the regressor
(:mod:`~powerfit.paper.step_energy`) and its compiled tree correction
(:mod:`~powerfit.paper.trees`).
"""

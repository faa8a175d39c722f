"""One training step: its operator graph, the time of each operator and of the step.

The graph (:mod:`~powerfit.steps.graph`: forward, backward, optimizer, recompute), the
latency of its rows and their sum (:mod:`~powerfit.steps.latency`: operator laws, or the
roofline where a precision has none), the per-GPU calibration of summed times
(:mod:`~powerfit.steps.calibration`) fitted on NeuSight's measured steps
(:mod:`~powerfit.steps.measured`), the interval widths shipped with the package
(:mod:`~powerfit.steps.intervals`) and a scikit-learn estimator of step time
(:mod:`~powerfit.steps.regressor`) and the step's peak memory on one GPU
(:mod:`~powerfit.steps.memory`). Next: parallelism.
"""

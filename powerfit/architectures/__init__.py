"""The model being trained: its description, read from a ``config.json``, and its layers.

:mod:`~powerfit.architectures.model` holds :class:`~powerfit.architectures.model.ModelConfig`
and the forward operators of its layers with the parameters each owns (hence the
parameter count); :mod:`~powerfit.architectures.hf` reads a Hugging Face ``config.json``
into a ``ModelConfig`` (the hand-written graphs of seven families, kept as the checked
reference). :mod:`~powerfit.architectures.trace` reads any ``config.json`` through
transformers' own classes on the meta device and traces one training step's operators
(:mod:`~powerfit.architectures.aten` names them), :mod:`~powerfit.architectures.cache`
keeps the traces on disk. Imports nothing of powerfit but :mod:`powerfit.exceptions`
(torch and transformers, the ``hf`` extra, only when a step is traced).
"""

"""The model being trained: its description, read from a ``config.json``, and its layers.

:mod:`~powerfit.architectures.model` holds :class:`~powerfit.architectures.model.ModelConfig`
and the forward operators of its layers with the parameters each owns (hence the
parameter count); :mod:`~powerfit.architectures.hf` reads a Hugging Face ``config.json``
into a ``ModelConfig``. Imports nothing of powerfit but :mod:`powerfit.exceptions`.
"""

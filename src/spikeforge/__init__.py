"""spikeforge: spiking neural networks that learn with local rules and with gradients.

The package is layered (see README): building blocks (``neurons``, ``synapses``, ``plasticity``,
``encoding``, ``surrogate``) at the bottom, ``engines`` that advance networks in time, ready
``models``, runnable ``experiments`` and the ``cli`` on top; ``data``, ``io``, ``evaluation`` and
``plotting`` are leaves used by all.
"""

__version__ = "0.1.0"

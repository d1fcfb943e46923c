"""Interchange with other SNN libraries and neuromorphic tool chains (NIR: :mod:`spikeforge.interchange.nir`).

The ``nir`` package is an optional dependency (``pip install spikeforge[nir]``); it is imported only when
a graph is built or read.
"""

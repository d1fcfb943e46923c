"""Names, defaults and the error type of the NIR interchange, importable without torch or nir (the
CLI's parser uses them; export and import both use the error and the lazy import of ``nir``)."""

from __future__ import annotations

from ..config import ConfigError

DEFAULT_DT_S = 1e-4
"""Time step in seconds given to NIR's continuous time constants (snnTorch's exporter/importer use 1e-4)."""
APPROXIMATIONS = {
    "reset-to-zero": "neurons with reset by subtraction (or no reset) are exported with reset to zero "
    "(NIR LIF has only a hard reset): the membrane drops to 0 after a spike instead of by theta, "
    "so the spike trains change",
}
R_CONVENTIONS = ("snntorch", "unit")
POOLINGS = ("avg", "sum")
SUPPORTED_NIR_MAJOR = 1


class NIRError(ConfigError):
    """A network cannot be exported to NIR exactly, or a NIR graph cannot be imported."""


def _nir():
    """The ``nir`` package, imported when first needed (an optional dependency)."""
    try:
        import nir
    except ImportError:  # pragma: no cover - depends on the environment
        raise NIRError(
            "NIR export/import needs the 'nir' package: pip install 'spikeforge[nir]' (or pip install nir)"
        ) from None
    return nir

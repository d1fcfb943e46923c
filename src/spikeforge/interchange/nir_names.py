"""Names and defaults of the NIR interchange, importable without torch or nir (the CLI's parser uses them)."""

from __future__ import annotations

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

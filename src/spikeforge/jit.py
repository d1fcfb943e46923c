"""Compiled kernels whose on-disk cache knows what they depend on.

numba's ``cache=True`` keys a function's cache on the source of *its own file* only. A cached kernel
that calls (and inlines) a jitted function from another module is therefore loaded stale after that
module changes; we checked with numba 0.68. Passing a jitted function as an argument does not help:
numba types the argument by the dispatcher object, so the cache misses in every new process and
gains a file each time. The same holds for closures over jitted functions.

:func:`kernel` is ``njit(cache=True)`` with a different freshness stamp. The stamp is the function
file's hash *and* one hash of every source file of the compute layers (``neurons``, ``plasticity``,
``synapses``, ``encoding``, ``engines``, ``models``, and this file). Any edit there recompiles every
kernel once. That costs a developer a few seconds and can never load a stale kernel. Users, who do
not edit the package, compile once per installation. This relies on numba's cache-locator
classes (``numba.core.caching``). If a numba version lacks them, kernels are compiled without an
on-disk cache, which is slower to start but still correct.

Learning rules are inlined too. The compiled Diehl & Cook loop is built once per rule from the
rule's functions (:func:`spikeforge.engines.dc_numba_kernel.kernel_for`), and each rule's loop is
cached in its own file.
"""

from __future__ import annotations

import functools
import hashlib
import pathlib
import warnings

from numba import njit

_PACKAGE = pathlib.Path(__file__).resolve().parent
KERNEL_DIRS = ("neurons", "plasticity", "synapses", "encoding", "engines", "models")
_MARK = "__spikeforge_kernel__"


@functools.lru_cache(maxsize=1)
def kernel_sources_hash() -> str:
    """SHA-256 over the source files of the compute layers (paths and contents, in sorted order)."""
    h = hashlib.sha256()
    files = [pathlib.Path(__file__).resolve()]
    for d in KERNEL_DIRS:
        files += sorted((_PACKAGE / d).rglob("*.py"))
    for f in files:
        h.update(f.relative_to(_PACKAGE).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _install_locators() -> bool:
    try:
        from numba.core import caching
    except ImportError:  # pragma: no cover - very old or very new numba
        return False
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    bases = [
        getattr(caching, name, None) or getattr(caching, "_" + name, None)
        for name in ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")
    ]
    if impl is None or not hasattr(impl, "_locator_classes") or None in bases:  # pragma: no cover
        return False

    def marked(base):
        class Locator(base):
            @classmethod
            def from_function(cls, py_func, py_file):
                if not getattr(py_func, _MARK, False):
                    return None
                return super().from_function(py_func, py_file)

            def get_source_stamp(self):
                return (super().get_source_stamp(), kernel_sources_hash())

        Locator.__name__ = Locator.__qualname__ = "SourceTree" + base.__name__.lstrip("_")
        return Locator

    ours = [marked(b) for b in bases]
    if not any(getattr(c, "__name__", "").startswith("SourceTree") for c in impl._locator_classes):
        impl._locator_classes = ours + list(impl._locator_classes)
    return True


CACHE_AVAILABLE = _install_locators()
if not CACHE_AVAILABLE:  # pragma: no cover
    warnings.warn("numba's cache locators were not found: compiled kernels are not cached on disk", stacklevel=1)


def kernel(func=None, **options):
    """``numba.njit`` with the dependency-aware on-disk cache (``@kernel`` or ``@kernel(inline="always")``)."""

    def wrap(f):
        setattr(f, _MARK, True)
        return njit(cache=CACHE_AVAILABLE, **options)(f)

    return wrap(func) if func is not None else wrap

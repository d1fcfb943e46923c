"""The synthetic odor-classification task of Wang, Sun, Axel, Abbott & Yang (2021).

An odor is a vector of ``n_or`` receptor (OR) activations drawn iid from uniform[0, 1). Prototypes
are drawn from the same distribution; an odor's label is its nearest prototype in Euclidean distance
(``gyyang/olfaction_evolution:task.py _get_labels``), and prototype ``k`` belongs to class
``k mod n_class`` (Wang's relabelling ``relabel_200_100``: two prototypes per class, reference §2.2).
Receptor noise (additive Gaussian, Wang's ``ORN_NOISE_STD``) is applied by the model, not stored.

Presets (reference §1.2, §2.2):

=========  =====  ==========  =======  =========  ======  ==========================================
preset     n_or   prototypes  classes  train      test    source
=========  =====  ==========  =======  =========  ======  ==========================================
small      50     20          10       5,000      1,000   the vgp23 report's smaller task
medium     50     20          10       50,000     1,000   the same task with 10x the training data
wang2021   50     200         100      1,000,000  8,192   Wang et al.'s ``relabel_200_100``
=========  =====  ==========  =======  =========  ======  ==========================================

Generation is seeded (one ``numpy`` generator per split, derived from ``seed``), runs in chunks of
``chunk_size`` odors so memory stays bounded at 1M samples, and the result is cached on disk
(``.npz``, float32 odors + int64 labels) under a file name keyed by every generator parameter.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from pydantic import Field, model_validator

from ..config import ConfigError, Params
from ..io.atomic import atomic_writer

ENV_CACHE = "SPIKEFORGE_OLFACTION_CACHE"


class OlfactionDataParams(Params):
    """Generator parameters. Defaults: the ``small`` preset (vgp23 report §2.2)."""

    n_or: int = Field(50, ge=1, description="receptor (OR) types = input dimension (Wang: N_ORN = 50)")
    n_prototypes: int = Field(20, ge=1, description="prototypes (Wang: 200; vgp23: 20)")
    n_class: int = Field(10, ge=2, description="classes; prototype k -> class k mod n_class")
    n_train: int = Field(5000, ge=1, description="training odors (a validation split is taken from these)")
    n_test: int = Field(1000, ge=1, description="test odors")
    seed: int = Field(0, ge=0, description="seeds prototypes and odors (Wang: RandomState(0))")
    chunk_size: int = Field(65536, ge=1, description="odors generated at a time (bounds memory)")

    @model_validator(mode="after")
    def _check(self) -> OlfactionDataParams:
        if self.n_prototypes < self.n_class:
            raise ValueError(
                f"n_prototypes = {self.n_prototypes} must be >= n_class = {self.n_class} "
                "(every class needs at least one prototype)"
            )
        return self

    def cache_key(self) -> str:
        d = self.to_dict()
        d.pop("chunk_size")  # the values do not depend on the chunking
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


PRESETS: dict[str, dict[str, int]] = {
    "small": {"n_or": 50, "n_prototypes": 20, "n_class": 10, "n_train": 5000, "n_test": 1000},
    "medium": {"n_or": 50, "n_prototypes": 20, "n_class": 10, "n_train": 50000, "n_test": 1000},
    "wang2021": {"n_or": 50, "n_prototypes": 200, "n_class": 100, "n_train": 1_000_000, "n_test": 8192},
}


def preset(name: str, **overrides) -> OlfactionDataParams:
    """The named preset's parameters (``small``, ``medium``, ``wang2021``), with ``overrides``."""
    if name not in PRESETS:
        raise ConfigError(f"unknown olfaction preset '{name}' (allowed: {', '.join(PRESETS)})")
    return OlfactionDataParams.from_dict({**PRESETS[name], **overrides})


def nearest_prototype(odors: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """Index of the nearest prototype (Euclidean) of each odor, ``|x|^2 - 2 x.p + |p|^2`` in float64."""
    x = odors.astype(np.float64)
    p = prototypes.astype(np.float64)
    d2 = (x * x).sum(1, keepdims=True) - 2.0 * x @ p.T + (p * p).sum(1)[None, :]
    return d2.argmin(1)


def _split_rng(seed: int, split: str) -> np.random.Generator:
    return np.random.default_rng([seed, {"prototypes": 0, "train": 1, "test": 2}[split]])


def generate(params: OlfactionDataParams) -> dict[str, np.ndarray]:
    """Generate the task: ``prototypes`` [P, n_or], ``x_train``/``x_test`` float32 [N, n_or] in
    [0, 1), ``y_train``/``y_test`` int64 class labels, ``proto_train``/``proto_test`` the nearest
    prototype of each odor."""
    protos = _split_rng(params.seed, "prototypes").uniform(0.0, 1.0, (params.n_prototypes, params.n_or))
    out: dict[str, np.ndarray] = {"prototypes": protos.astype(np.float32)}
    for split, n in (("train", params.n_train), ("test", params.n_test)):
        rng = _split_rng(params.seed, split)
        x = np.empty((n, params.n_or), dtype=np.float32)
        nearest = np.empty(n, dtype=np.int64)
        for start in range(0, n, params.chunk_size):
            stop = min(n, start + params.chunk_size)
            chunk = rng.uniform(0.0, 1.0, (stop - start, params.n_or))
            x[start:stop] = chunk
            nearest[start:stop] = nearest_prototype(chunk, protos)
        out[f"x_{split}"] = x
        out[f"proto_{split}"] = nearest
        out[f"y_{split}"] = nearest % params.n_class
    return out


def default_cache_dir() -> Path:
    env = os.environ.get(ENV_CACHE)
    return Path(env) if env else Path.home() / ".cache" / "spikeforge" / "olfaction"


def load(params: OlfactionDataParams, cache_dir: str | os.PathLike[str] | None = None) -> dict[str, np.ndarray]:
    """The task for ``params``, from the on-disk cache if present, else generated and cached.

    ``cache_dir=None`` uses ``$SPIKEFORGE_OLFACTION_CACHE`` or ``~/.cache/spikeforge/olfaction``;
    pass ``cache_dir=False``-like empty string ``""`` to skip caching.
    """
    if cache_dir == "":
        return generate(params)
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = directory / f"olfaction-{params.cache_key()}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
        if data["x_train"].shape == (params.n_train, params.n_or):
            return data
    data = generate(params)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path, "wb") as fh:
        np.savez(fh, **data)  # type: ignore[arg-type]
    return data

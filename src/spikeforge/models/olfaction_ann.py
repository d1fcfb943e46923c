"""The reference ANN of Wang, Sun, Axel, Abbott & Yang (2021): OR -> ORN -> PN -> KC -> class.

Follows ``gyyang/olfaction_evolution`` (``torchmodel.FullModel`` with the receptor-layer standard
config, reference §2.3): ReLU layers whose forward pass uses ``|W|`` (sign constraint); OR->ORN
weights normalised to sum 1 per ORN (``or2orn_normalization``), no bias; additive Gaussian noise on
the ORNs (``ORN_NOISE_STD = 0.1``); PN->KC weights below ``kc_prune_threshold`` (``1/N_PN``) are
zeroed in the forward pass; batch norm before the KC ReLU; KC bias initialised to -1; a linear
output layer with bias; cross-entropy; Adam (lr 1e-4). Initial weights U(low, 4/n_in) with
``low`` the prune threshold for PN->KC (``initial_pn2kc = 4/N_PN``).

Data-parallel training (``net.data_parallel``, a :class:`~.data_parallel.BatchShard`): the noise is this
rank's rows of the whole batch's draw and the batch norm takes the whole batch's statistics.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from ..config import Params
from .data_parallel import BatchShard


class WangANNParams(Params):
    """Defaults: Wang et al. receptor standard config (standard/experiments.py:88-104)."""

    layer_sizes: list[int] = Field(default_factory=lambda: [50, 500, 50, 2500])
    n_class: int = Field(10, ge=2)
    sign_constraint: bool = True
    orn_noise_std: float = Field(0.1, ge=0.0)
    or2orn_normalization: bool = True
    kc_prune: bool = True
    kc_batch_norm: bool = True
    kc_bias_init: float = -1.0
    receptor_layer: bool = Field(
        True,
        description="trainable OR->ORN block (Wang's receptor config); False: every ORN copies one OR, "
        "ORN i = OR i mod n_OR (Wang's standard config, N_ORN_DUPLICATION tiling)",
    )


class _SignedLinear(nn.Module):
    def __init__(self, n_in, n_out, p: WangANNParams, low, high, bias, generator, normalise=False, prune=0.0):
        super().__init__()
        w = low + (high - low) * torch.rand(n_out, n_in, generator=generator)
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(torch.zeros(n_out)) if bias else None
        self.sign, self.normalise, self.prune = p.sign_constraint, normalise, prune

    def effective_weight(self) -> torch.Tensor:
        w = self.weight.abs() if self.sign else self.weight
        if self.normalise:
            w = w / (w.sum(1, keepdim=True) + 1e-12)
        if self.prune > 0:
            w = w * (w > self.prune)  # Wang: weight > prune_threshold survives
        return w

    def forward(self, x):
        y = x @ self.effective_weight().t()
        return y if self.bias is None else y + self.bias


class _Tile(nn.Module):
    """Fixed OR->ORN block of Wang's network without a receptor layer: ORN i copies OR ``i mod n_in``
    (``act0.repeat(1, N_ORN_DUPLICATION)``); its weight is the one-hot matrix, for the metrics."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        if n_out % n_in:
            raise ValueError(
                f"receptor_layer = False tiles the {n_in} ORs into {n_out} ORNs: n_ORN must be a multiple of n_OR; "
                "change layer_sizes[1] or set ann.receptor_layer = true"
            )
        self.tile: torch.Tensor
        self.register_buffer("tile", torch.eye(n_in).repeat(n_out // n_in, 1))
        self.bias = None

    def effective_weight(self) -> torch.Tensor:
        return self.tile

    def forward(self, x):
        return x.repeat(1, self.tile.shape[0] // self.tile.shape[1])


class WangANN(nn.Module):
    """Wang et al.'s network of the given ``layer_sizes`` (any number of layers; the last hidden
    layer is the expansion (KC) layer, the layer before it the PN layer)."""

    def __init__(self, p: WangANNParams, generator: torch.Generator):
        super().__init__()
        self.p = p
        sizes = p.layer_sizes
        layers: list[_SignedLinear | _Tile] = []
        n_blocks = len(sizes) - 1
        for b in range(n_blocks):
            n_in, n_out = sizes[b], sizes[b + 1]
            last = b == n_blocks - 1
            prune = 1.0 / n_in if (last and p.kc_prune and n_blocks > 1) else 0.0
            layers.append(
                _SignedLinear(
                    n_in,
                    n_out,
                    p,
                    prune,
                    4.0 / n_in,
                    b > 0,
                    generator,
                    normalise=(b == 0 and p.or2orn_normalization),
                    prune=prune,
                )
            )
            if last and layers[-1].bias is not None:
                nn.init.constant_(layers[-1].bias, p.kc_bias_init)
        if not p.receptor_layer and n_blocks > 1:
            layers[0] = _Tile(sizes[0], sizes[1])
        self.blocks = nn.ModuleList(layers)
        self.kc_norm = nn.BatchNorm1d(sizes[-1]) if p.kc_batch_norm else nn.Identity()
        self.out = nn.Linear(sizes[-1], p.n_class)
        with torch.no_grad():
            a = 1.0 / sizes[-1] ** 0.5
            self.out.weight.uniform_(-a, a, generator=generator)
            self.out.bias.zero_()
        self.data_parallel: BatchShard | None = None  # set by data-parallel training (module docstring)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.out(self.activities(x, generator)[-1])

    def activities(self, x: torch.Tensor, generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """The activity of every layer after the input (ORN, PN, ..., KC)."""
        h, acts = x, []
        for b, layer in enumerate(self.blocks):
            h = layer(h)
            dp = self.data_parallel
            if b == len(self.blocks) - 1:
                if dp is not None and self.training and isinstance(self.kc_norm, nn.BatchNorm1d):
                    h = dp.batch_norm(h, self.kc_norm)
                else:
                    h = self.kc_norm(h)
            h = torch.relu(h)
            if b == 0 and self.p.orn_noise_std > 0:
                # Wang's FullModel.forward: added to the ORN layer's output (after its ReLU, so an ORN
                # can be negative), in training and evaluation alike
                if dp is None:  # drawn from the CPU generator: every device sees the same noise
                    z = torch.randn(h.shape, generator=generator, dtype=h.dtype)
                else:  # this rank's rows of the whole batch's draw
                    z = dp.draw(torch.randn, h.shape, generator, h.dtype)
                h = h + self.p.orn_noise_std * z.to(h.device)
            acts.append(h)
        return acts

    def param_groups(self, lr: float, pn2kc_lr: float) -> list[dict]:
        """Adam parameter groups: the last (PN->KC) block at ``pn2kc_lr``, everything else at ``lr``
        (Wang's optional separate ``pn2kc_lr``, reference §2.4)."""
        kc = list(self.blocks[-1].parameters())
        ids = {id(q) for q in kc}
        rest = [q for q in self.parameters() if id(q) not in ids]
        return [{"params": rest, "lr": lr}, {"params": kc, "lr": pn2kc_lr}]

    def connectivity(self) -> list[torch.Tensor]:
        """Effective weights of each block, ``[n_out, n_in]``."""
        return [layer.effective_weight().detach() for layer in self.blocks if isinstance(layer, (_SignedLinear, _Tile))]

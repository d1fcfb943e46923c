r"""NIR graph -> spikeforge module (:class:`NIRNetwork`), for feed-forward chains.

Mapping (``dt`` from the argument, else the graph's ``dt_s`` metadata, else an error):

* ``Affine``/``Linear`` -> ``nn.Linear``; ``Conv2d`` -> ``nn.Conv2d``; ``AvgPool2d`` -> ``nn.AvgPool2d``;
  ``SumPool2d`` -> average pool times the kernel area; ``Flatten`` -> flatten of the non-batch dims;
  ``Scale`` -> element-wise gain;
* ``LIF(tau, r, v_leak = 0, v_threshold, v_reset = 0)`` -> :class:`~spikeforge.neurons.leaky.Leaky` with
  reset to zero, ``beta = 1 - dt/tau`` and the input multiplied by ``r dt / tau`` (1 for snnTorch's
  convention ``r = tau/dt``);
* ``IF(r, v_threshold, v_reset = 0)`` -> ``Leaky`` with ``beta = 1`` and input gain ``r``.

Everything else (``CubaLIF``, ``LI``, ``I``, ``Delay``, ``Threshold``, ``Conv1d``, sub-graphs, a
non-zero ``v_leak``/``v_reset``, ``tau < dt``, branching or recurrent edges) is refused with a
:class:`~spikeforge.interchange.nir.NIRError` naming the node and the reason.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..neurons.leaky import leaky_multistep
from .nir_names import NIRError, _nir

_WHY = {
    "CubaLIF": "current-based synapse dynamics (tau_syn) are not imported: spikeforge's Leaky has no synaptic current",
    "LI": "leaky integrators without spikes are not imported",
    "I": "integrators without spikes are not imported",
    "Delay": "delays are not supported by spikeforge's Leaky layers",
    "Threshold": "a stateless threshold node is not imported",
    "Conv1d": "1-D convolutions are not imported",
    "NIRGraph": "nested sub-graphs (e.g. recurrent layers) are not imported; spikeforge imports feed-forward chains",
}


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float32))


def _two(a) -> tuple[int, int]:
    """A NIR int-or-pair field as a pair of ints."""
    v = np.broadcast_to(np.asarray(a, dtype=np.int64), (2,))
    return int(v[0]), int(v[1])


class _Stateless(nn.Module):
    """Applies ``fn`` to ``[B, T, *shape]`` with time folded into the batch."""

    def __init__(self, mod: nn.Module):
        super().__init__()
        self.mod = mod

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T = x.shape[:2]
        y = self.mod(x.reshape(B * T, *x.shape[2:]))
        return y.reshape(B, T, *y.shape[1:])


class _Scale(nn.Module):
    def __init__(self, scale: torch.Tensor):
        super().__init__()
        self.register_buffer("scale", scale)

    def forward(self, x):
        return x * self.scale


class _Flatten(nn.Module):
    def __init__(self, start: int, end: int):
        super().__init__()
        self.start, self.end = start, end

    def forward(self, x):  # x: [B*T, *shape]; NIR dims exclude the batch
        return torch.flatten(
            x, self.start + 1 if self.start >= 0 else self.start, self.end + 1 if self.end >= 0 else self.end
        )


class _SumPool(nn.Module):
    def __init__(self, kernel, stride, padding):
        super().__init__()
        self.kernel, self.stride, self.padding = tuple(kernel), tuple(stride), tuple(padding)

    def forward(self, x):
        area = float(np.prod(self.kernel))
        return area * F.avg_pool2d(x, self.kernel, self.stride, self.padding, count_include_pad=True)


class NIRLeaky(nn.Module):
    """Reset-to-zero LIF layer from a NIR ``LIF``/``IF`` node: ``U = beta U + gain I``, spike if U > theta."""

    def __init__(self, beta: torch.Tensor, threshold: torch.Tensor, gain: torch.Tensor):
        super().__init__()
        self.register_buffer("beta", beta)
        self.register_buffer("threshold", threshold)
        self.register_buffer("gain", gain)

    beta: torch.Tensor
    threshold: torch.Tensor
    gain: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, *shape]
        s, _ = leaky_multistep(x * self.gain, self.beta, self.threshold, reset="zero", time_dim=1)
        return s


def _lif(nir, key: str, node, dt: float) -> nn.Module:
    if not np.allclose(node.v_reset, 0.0):
        raise NIRError(f"node {key!r} ({type(node).__name__}): v_reset != 0 is not supported (spikeforge resets to 0)")
    if isinstance(node, nir.IF):
        return NIRLeaky(torch.ones(()), _t(node.v_threshold), _t(node.r))
    if not np.allclose(node.v_leak, 0.0):
        raise NIRError(f"node {key!r} (LIF): v_leak != 0 (a resting drive) is not supported")
    tau = np.asarray(node.tau, dtype=np.float64)
    if np.any(tau < dt * (1 - 1e-6)):
        raise NIRError(f"node {key!r} (LIF): tau {tau.min():g} s is shorter than dt {dt:g} s (beta would be < 0)")
    beta = np.clip(1.0 - dt / tau, 0.0, 1.0)
    gain = np.asarray(node.r, dtype=np.float64) * dt / tau
    return NIRLeaky(_t(beta), _t(node.v_threshold), _t(gain))


def _module(nir, key: str, node, dt: float) -> nn.Module | None:
    if isinstance(node, (nir.Input, nir.Output)):
        return None
    if isinstance(node, (nir.Affine, nir.Linear)):
        w = _t(node.weight)
        lin = nn.Linear(w.shape[1], w.shape[0], bias=isinstance(node, nir.Affine))
        with torch.no_grad():
            lin.weight.copy_(w)
            if isinstance(node, nir.Affine):
                lin.bias.copy_(_t(node.bias))
        return _Stateless(lin)
    if isinstance(node, nir.Conv2d):
        pad: str | tuple[int, int] = node.padding if isinstance(node.padding, str) else _two(node.padding)
        w = _t(node.weight)
        conv = nn.Conv2d(
            w.shape[1] * node.groups,
            w.shape[0],
            (int(w.shape[2]), int(w.shape[3])),
            stride=_two(node.stride),
            padding=pad,
            dilation=_two(node.dilation),
            groups=int(node.groups),
            bias=True,
        )
        with torch.no_grad():
            conv.weight.copy_(w)
            assert conv.bias is not None
            conv.bias.copy_(_t(node.bias) if node.bias is not None else torch.zeros(w.shape[0]))
        return _Stateless(conv)
    if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
        k, s, p = _two(node.kernel_size), _two(node.stride), _two(node.padding)
        pool = nn.AvgPool2d(k, s, p) if isinstance(node, nir.AvgPool2d) else _SumPool(k, s, p)
        return _Stateless(pool)
    if isinstance(node, nir.Flatten):
        return _Stateless(_Flatten(int(node.start_dim), int(node.end_dim)))
    if isinstance(node, nir.Scale):
        return _Scale(_t(node.scale))
    if isinstance(node, (nir.LIF, nir.IF)):
        return _lif(nir, key, node, dt)
    name = type(node).__name__
    raise NIRError(
        f"cannot import node {key!r} ({name}): {_WHY.get(name, 'no spikeforge mapping')}; spikeforge imports "
        "Input, Output, Affine, Linear, Conv2d, AvgPool2d, SumPool2d, Flatten, Scale, LIF and IF"
    )


def _chain(graph) -> list[str]:
    """Node keys from the input to the output; refuses branches and cycles."""
    nir = _nir()
    succ: dict[str, list[str]] = {k: [] for k in graph.nodes}
    pred: dict[str, int] = {k: 0 for k in graph.nodes}
    for a, b in graph.edges:
        if a not in succ or b not in succ:
            raise NIRError(f"edge ({a!r}, {b!r}) names a node that is not in the graph")
        succ[a].append(b)
        pred[b] += 1
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise NIRError(f"the graph has {len(inputs)} Input nodes; spikeforge imports graphs with exactly one")
    order, seen, k = [], set(), inputs[0]
    while True:
        if k in seen:
            raise NIRError(f"the graph has a cycle through node {k!r} (recurrence is not imported)")
        seen.add(k)
        order.append(k)
        if len(succ[k]) > 1 or pred[k] > 1:
            raise NIRError(f"node {k!r} branches or merges; spikeforge imports feed-forward chains only")
        if not succ[k]:
            break
        k = succ[k][0]
    if not isinstance(graph.nodes[k], nir.Output) or len(order) != len(graph.nodes):
        raise NIRError("the graph is not one chain from its Input to its Output node")
    return order


class NIRNetwork(nn.Module):
    """A NIR chain as a spikeforge network: ``forward(x [B, T, *input_shape]) -> spikes [B, T, *output_shape]``
    (the output of the last node; every step's input is given to the input node). ``metadata``: the graph's."""

    def __init__(self, layers: dict[str, nn.Module], dt: float, metadata: dict):
        super().__init__()
        self.layers = nn.ModuleDict({k.replace(".", "_"): m for k, m in layers.items()})
        self.names = list(layers)
        self.dt = dt
        self.metadata = metadata

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3:
            raise NIRError(f"NIRNetwork expects input [B, T, *shape], got {tuple(x.shape)}")
        for m in self.layers.values():
            x = m(x)
        return x


def from_nir(graph, dt: float | None = None) -> NIRNetwork:
    nir = _nir()
    if not isinstance(graph, nir.NIRGraph):
        raise NIRError(f"from_nir expects a nir.NIRGraph or a file path, got {type(graph).__name__}")
    meta = dict(graph.metadata or {})
    if dt is None:
        if "dt_s" not in meta:
            raise NIRError(
                "the graph does not record its time step (no 'dt_s' metadata): pass dt (seconds), e.g. dt=1e-4 "
                "for graphs exported by snnTorch"
            )
        dt = float(np.asarray(meta["dt_s"]))
    if not dt > 0:
        raise NIRError(f"dt must be > 0 seconds, got {dt}")
    layers = {}
    for key in _chain(graph):
        m = _module(nir, key, graph.nodes[key], dt)
        if m is not None:
            layers[key] = m
    return NIRNetwork(layers, dt, meta)

r"""Export spikeforge networks to NIR (the Neuromorphic Intermediate Representation, ``nir`` 1.0.x) and
import NIR graphs (see docs/interchange.md for the full mapping table).

Time. spikeforge's :class:`~spikeforge.neurons.leaky.Leaky` is discrete, one step per time bin::

    U[t] = beta * U[t-1] + I[t]          (then spike if U > theta, and reset)

NIR's ``LIF`` is continuous: ``tau dv/dt = (v_leak - v) + r I``, spike when ``v > v_threshold``, then
``v <- v_reset``. Its forward-Euler step of length ``dt`` is ``v <- (1 - dt/tau) v + (r dt/tau) I``, so

    tau = dt / (1 - beta),   and the input gain r dt / tau must be 1.

Two equivalent ways to write the gain (``r_convention``):

* ``"snntorch"`` (default, what snnTorch exports): ``r = tau / dt``, weights unchanged;
* ``"unit"``: ``r = 1`` and the factor ``tau/dt = 1/(1 - beta)`` multiplied into the weights and
  bias of the affine/convolution that feeds the neuron (through any average pooling between them).
  Norse 1.1's importer ignores ``r`` (it warns and uses 1), so graphs meant for Norse need this.

Average pooling (``pooling``): ``"avg"`` (default) writes NIR ``AvgPool2d`` (read by snnTorch);
``"sum"`` writes ``SumPool2d`` with the ``1/area`` multiplied into the preceding convolution, the same
map, for Norse 1.1, which reads SumPool2d but not AvgPool2d (it silently drops the node).

``dt`` (seconds; default ``1e-4``, snnTorch's hard-coded value, so snnTorch's importer recovers beta
exactly) is stored in the graph's metadata (``dt_s``) with the mapping, and ``beta = 1`` (no leak) is
exported as NIR ``IF``. Both conventions describe the same dynamics; with ``beta = 0.99`` and
``dt = 1e-4`` that is ``tau = 0.01 s``.

Reset. NIR has only a hard reset to ``v_reset``; the reset-to-zero ``Leaky`` maps exactly (the spike
trains are the same; the membrane differs only in the step of a spike, where NIR shows the value
after the reset). Reset by subtraction (the snnTorch/snn-tha default) and no reset have no NIR form:
:func:`to_nir` refuses them unless ``approximate=("reset-to-zero",)`` is given, which exports those
neurons with reset to zero (the spike trains then change; the metadata records it per node).

Batch norm is folded, with its running statistics (evaluation-mode semantics, whatever mode the
model is in), into the preceding affine/convolution, through an average pooling between them.
Binarized layers export their sign weights (times the folded batch-norm scale, if any). Dropout is
the identity (evaluation mode).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..neurons.leaky import Leaky
from ..synapses.binarized import BinaryConv2d, BinaryLinear
from .nir_names import (
    APPROXIMATIONS,
    DEFAULT_DT_S,
    POOLINGS,
    R_CONVENTIONS,
    SUPPORTED_NIR_MAJOR,
    NIRError,
    _nir,
)

__all__ = [
    "APPROXIMATIONS",
    "DEFAULT_DT_S",
    "POOLINGS",
    "R_CONVENTIONS",
    "NIRError",
    "from_nir",
    "read_nir",
    "to_nir",
    "write_nir",
]


_REFUSED = {
    "ConductanceLIF": "conductance-based synapses (input scaled by E_rev - v) have no NIR node; "
    "NIR has current-based LIF/CubaLIF only",
    "AdaptiveThreshold": "adaptive thresholds (theta grows with each spike) have no NIR node; "
    "NIR thresholds are constant",
    "Delay": "synaptic delays are not exported (NIR Delay is read by neither snnTorch nor Norse)",
}


def _np(t: torch.Tensor | float) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().cpu().double().numpy().astype(np.float32)
    return np.asarray(t, dtype=np.float32)


def _pair(v) -> np.ndarray:
    if isinstance(v, str):
        raise NIRError(f"padding {v!r} (a string) cannot be exported: give integer padding")
    return np.asarray(v if isinstance(v, (tuple, list)) else (v, v), dtype=np.int64)


# -- model -> list of layers ---------------------------------------------------------------------
def _layers(model: nn.Module) -> tuple[list[tuple[str, nn.Module]], tuple[int, ...] | None]:
    """The model as a chain of (name, module) and its input shape (without batch/time), if known."""
    from ..models.tha_nets import SpikeTimingNet, THAMnistNet

    if isinstance(model, THAMnistNet):
        p = model.params
        out: list[tuple[str, nn.Module]] = [("conv1", model.conv1), ("pool1", nn.AvgPool2d(2))]
        out += [("bn1", model.bn1)] if p.batch_norm else []
        out += [("lif1", model.lif1), ("conv2", model.conv2), ("pool2", nn.AvgPool2d(2))]
        out += [("bn2", model.bn2)] if p.batch_norm else []
        out += [("lif2", model.lif2), ("flatten", nn.Flatten()), ("fc", model.fc), ("lif3", model.lif3)]
        return out, (p.in_channels, p.image_size, p.image_size)
    if isinstance(model, SpikeTimingNet):
        mods = [("fc1", model.fc1), ("lif1", model.lif1), ("fc2", model.fc2), ("lif2", model.lif2)]
        return mods, (model.params.num_inputs,)
    if isinstance(model, nn.Sequential):
        out = []
        for name, m in model.named_children():
            if isinstance(m, nn.Sequential):
                out += [(f"{name}.{n}", c) for n, c in _layers(m)[0]]
            else:
                out.append((name, m))
        return out, None
    if isinstance(model, (Leaky, nn.Linear, nn.Conv2d)):
        return [("0", model)], None
    raise NIRError(
        f"cannot export {type(model).__name__} to NIR: give THAMnistNet, SpikeTimingNet or an nn.Sequential "
        "of Linear/Conv2d/AvgPool2d/Flatten/BatchNorm/Dropout/Leaky (binarized layers included)"
    )


def _refuse(name: str, m: nn.Module) -> NIRError:
    cls = type(m).__name__
    for key, why in _REFUSED.items():
        if key.lower() in cls.lower():
            return NIRError(f"cannot export node {name!r} ({cls}) to NIR: {why}")
    return NIRError(
        f"cannot export node {name!r} ({cls}) to NIR: no NIR mapping; supported are Linear, Conv2d, AvgPool2d, "
        "Flatten, BatchNorm1d/2d (folded), Dropout/Identity (skipped) and Leaky"
    )


# -- the export ----------------------------------------------------------------------------------
class _Builder:
    def __init__(self, nir, shape: tuple[int, ...], dt: float, approximate: set[str], r_convention: str, pooling: str):
        self.nir, self.shape, self.dt = nir, tuple(int(s) for s in shape), dt
        self.approximate, self.r_convention, self.pooling = approximate, r_convention, pooling
        self.nodes: list[tuple[str, Any]] = []  # (name, nir node)
        self.notes: dict[str, str] = {}
        self.refused: list[str] = []  # neurons NIR cannot express (reported together)

    def _last_affine(self, name: str, what: str) -> tuple[int, Any, float]:
        """Index of the last Affine/Linear/Conv2d node, reachable back through unpadded pools only,
        and the product of the kernel areas of the sum pools passed (a shift there is multiplied by it)."""
        area = 1.0
        for i in range(len(self.nodes) - 1, -1, -1):
            node = self.nodes[i][1]
            if isinstance(node, (self.nir.Affine, self.nir.Linear, self.nir.Conv2d)):
                return i, node, area
            if not (isinstance(node, (self.nir.AvgPool2d, self.nir.SumPool2d)) and not np.any(node.padding)):
                break
            if isinstance(node, self.nir.SumPool2d):
                area *= float(np.prod(node.kernel_size))
        raise NIRError(
            f"cannot fold {what} of node {name!r} into a preceding Linear/Conv2d: "
            "it must follow one (optionally through unpadded pooling)"
        )

    def _scale_affine(self, name: str, what: str, scale: np.ndarray, shift: np.ndarray | None = None) -> None:
        """Multiply the outputs of the preceding affine node by ``scale`` (per channel) and add ``shift``."""
        i, node, area = self._last_affine(name, what)
        key = self.nodes[i][0]
        nir = self.nir
        scale = np.broadcast_to(np.asarray(scale, np.float64), (node.weight.shape[0],))
        w = node.weight.astype(np.float64) * scale.reshape(-1, *([1] * (node.weight.ndim - 1)))
        b = np.zeros(node.weight.shape[0]) if isinstance(node, nir.Linear) else node.bias.astype(np.float64)
        b = b * scale + (0.0 if shift is None else shift / area)
        w, b = w.astype(np.float32), b.astype(np.float32)
        if isinstance(node, nir.Conv2d):
            new = nir.Conv2d(node.input_shape, w, node.stride, node.padding, node.dilation, node.groups, b)
        elif shift is None and isinstance(node, nir.Linear):
            new = nir.Linear(w)
        else:
            new = nir.Affine(w, b)
        self.nodes[i] = (key, new)

    def add(self, name: str, m: nn.Module) -> None:
        nir = self.nir
        if isinstance(m, (nn.Dropout, nn.Identity)):
            return
        if isinstance(m, nn.Linear):
            w = torch.where(m.weight >= 0, 1.0, -1.0) if isinstance(m, BinaryLinear) else m.weight
            if self.shape != (m.in_features,):
                raise NIRError(f"node {name!r} (Linear {m.in_features} inputs) receives shape {self.shape}")
            node = nir.Linear(_np(w)) if m.bias is None else nir.Affine(_np(w), _np(m.bias))
            self.shape = (m.out_features,)
        elif isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros" or len(self.shape) != 3 or self.shape[0] != m.in_channels:
                raise NIRError(
                    f"node {name!r} (Conv2d, {m.in_channels} channels, padding_mode {m.padding_mode}) cannot take "
                    f"input of shape {self.shape}: it needs [C, H, W] with C = {m.in_channels} and zero padding"
                )
            w = torch.where(m.weight >= 0, 1.0, -1.0) if isinstance(m, BinaryConv2d) else m.weight
            bias = _np(m.bias) if m.bias is not None else np.zeros(m.out_channels, np.float32)
            node = nir.Conv2d(
                self.shape[1:], _np(w), _pair(m.stride), _pair(m.padding), _pair(m.dilation), m.groups, bias
            )
            with torch.no_grad():
                self.shape = tuple(m(torch.zeros(1, *self.shape)).shape[1:])
        elif isinstance(m, nn.AvgPool2d):
            if m.ceil_mode or m.divisor_override is not None or (np.any(_pair(m.padding)) and not m.count_include_pad):
                raise NIRError(
                    f"node {name!r} (AvgPool2d): ceil_mode, divisor_override and padding excluded from the "
                    "count have no NIR form"
                )
            stride = m.stride if m.stride is not None else m.kernel_size
            k = _pair(m.kernel_size)
            if self.pooling == "sum":  # the same map: 1/area into the weights before, then a sum
                if np.any(_pair(m.padding)):
                    raise NIRError(f"node {name!r} (AvgPool2d with padding): pooling 'sum' needs unpadded pooling")
                self._scale_affine(name, "the 1/area of average pooling (pooling 'sum')", np.array(1.0 / np.prod(k)))
                node = nir.SumPool2d(k, _pair(stride), _pair(m.padding))
            else:
                node = nir.AvgPool2d(k, _pair(stride), _pair(m.padding))
            with torch.no_grad():
                self.shape = tuple(m(torch.zeros(1, *self.shape)).shape[1:])
        elif isinstance(m, nn.Flatten):
            start, end = m.start_dim, m.end_dim
            if start == 0 or end == 0:
                raise NIRError(f"node {name!r} (Flatten) flattens the batch dimension: use start_dim >= 1")
            node = nir.Flatten(
                {"input": np.asarray(self.shape)}, start - 1 if start > 0 else start, end - 1 if end > 0 else end
            )
            self.shape = tuple(int(s) for s in node.output_type["output"])
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if m.running_mean is None or m.running_var is None:
                raise NIRError(
                    f"cannot fold node {name!r} (batch norm without running statistics) into an affine layer"
                )
            s = (m.weight.double() if m.affine else 1.0) * torch.rsqrt(m.running_var.double() + m.eps)
            shift = (m.bias.double() if m.affine else 0.0) - m.running_mean.double() * s
            self._scale_affine(name, "batch norm", s.numpy(), torch.as_tensor(shift).double().numpy())
            return
        elif isinstance(m, Leaky):
            node = self._lif(name, m)
        else:
            raise _refuse(name, m)
        self.nodes.append((name, node))

    def _lif(self, name: str, m: Leaky):
        nir = self.nir
        reset = m.params.reset
        if reset != "zero":
            what = "reset by subtraction" if reset == "subtract" else "no reset"
            if "reset-to-zero" not in self.approximate:
                self.refused.append(f"node {name!r} (Leaky, {what})")
            self.notes[name] = f"{what} approximated by reset to zero"
        shape = self.shape
        beta = np.broadcast_to(_np(m.beta.clamp(0.0, 1.0)), shape).astype(np.float64)
        theta = np.broadcast_to(_np(m.threshold), shape).astype(np.float32)
        zeros = np.zeros(shape, np.float32)
        if np.all(beta == 1.0):
            return nir.IF(np.ones(shape, np.float32), theta.copy(), zeros)
        if np.any(beta == 1.0):
            raise NIRError(f"node {name!r}: beta is 1 for some neurons only; NIR LIF needs tau finite, IF all beta = 1")
        tau = self.dt / (1.0 - beta)
        if self.r_convention == "unit":
            gain = np.unique(1.0 / (1.0 - beta))
            if gain.size != 1:
                raise NIRError(f"node {name!r}: r_convention 'unit' needs one beta per layer (fold into the weights)")
            self._scale_affine(name, "the input gain tau/dt (r_convention 'unit')", gain)
            r = np.ones(shape, np.float32)
        else:
            r = (tau / self.dt).astype(np.float32)
        return nir.LIF(tau.astype(np.float32), r, zeros.copy(), theta.copy(), zeros.copy())

    def graph(self, metadata: dict):
        nir = self.nir
        nodes = {n: node for n, node in self.nodes}
        if len(nodes) != len(self.nodes):
            raise NIRError("duplicate layer names in the model")
        first = self.nodes[0][1]
        in_shape = first.input_type["input"]
        nodes = {"input": nir.Input({"input": np.asarray(in_shape)}), **nodes}
        nodes["output"] = nir.Output({"output": np.asarray(self.shape)})
        keys = list(nodes)
        for n, note in self.notes.items():
            nodes[n].metadata = {"approximation": note}
        return nir.NIRGraph(nodes, list(zip(keys[:-1], keys[1:])), metadata=metadata)


def to_nir(
    model: nn.Module,
    input_shape: Sequence[int] | None = None,
    *,
    dt: float = DEFAULT_DT_S,
    approximate: Iterable[str] = (),
    r_convention: str = "snntorch",
    pooling: str = "avg",
):
    """The NIR graph (``nir.NIRGraph``) of ``model``: a chain ``input -> ... -> output``.

    ``input_shape``: the input of one time step without batch, e.g. ``(1, 28, 28)`` or ``(20,)``
    (taken from the model for THAMnistNet / SpikeTimingNet). ``dt``: seconds per step (metadata and
    ``tau``). ``approximate``: names in :data:`APPROXIMATIONS` to allow. ``r_convention``, ``pooling``:
    see the module doc.
    Raises :class:`NIRError` naming the node and the reason when NIR cannot express the model."""
    nir = _nir()
    approx = set(approximate)
    if bad := approx - set(APPROXIMATIONS):
        raise NIRError(f"unknown approximation(s) {sorted(bad)}; known: {sorted(APPROXIMATIONS)}")
    if r_convention not in R_CONVENTIONS:
        raise NIRError(f"r_convention must be one of {R_CONVENTIONS}, got {r_convention!r}")
    if pooling not in POOLINGS:
        raise NIRError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if not dt > 0:
        raise NIRError(f"dt must be > 0 seconds, got {dt}")
    layers, shape = _layers(model)
    shape = tuple(input_shape) if input_shape is not None else shape
    if shape is None:
        raise NIRError(f"give input_shape (one time step, no batch) to export a {type(model).__name__}")
    b = _Builder(nir, shape, float(dt), approx, r_convention, pooling)
    with torch.no_grad():
        for name, m in layers:
            b.add(name, m)
    if b.refused:
        raise NIRError(
            f"cannot export {', '.join(b.refused)} to NIR exactly: NIR's LIF has only a hard reset (v <- v_reset), "
            "no reset by subtraction; export with approximate=('reset-to-zero',) (CLI: --approximate reset-to-zero) "
            "to reset to zero instead, which changes the spike trains"
        )
    if not b.nodes:
        raise NIRError("the model has no layer to export")
    metadata = {
        "producer": f"spikeforge {__version__}",
        "model": type(model).__name__,
        "dt_s": float(dt),
        "time_mapping": "tau = dt_s / (1 - beta); r = tau / dt_s (r_convention snntorch) or r = 1 with tau/dt_s in the "
        "weights (unit); beta = 1 - dt_s / tau",
        "r_convention": r_convention,
        "pooling": pooling,
        "approximations": "; ".join(f"{n}: {v}" for n, v in b.notes.items()) or "none",
        "input_encoding": "the input of every time step is given to the input node",
    }
    return b.graph(metadata)


def write_nir(graph, path: str | os.PathLike) -> None:
    """Write ``graph`` to ``path`` (HDF5, ``nir.write``) through a temporary file and a rename."""
    nir = _nir()
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        nir.write(tmp, graph)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_nir(path: str | os.PathLike):
    """Read a NIR file, checking that it is NIR version 1.x (the one this module maps)."""
    nir = _nir()
    import h5py

    if not os.path.isfile(path):
        raise FileNotFoundError(f"NIR file {os.fspath(path)} does not exist")
    try:
        with h5py.File(path, "r") as f:
            if "version" not in f or "node" not in f:
                raise NIRError(f"{os.fspath(path)} is not a NIR file: it has no 'version'/'node' entries")
            version = f["version"][()]
    except OSError as err:
        raise NIRError(f"{os.fspath(path)} is not a NIR (HDF5) file: {err}") from None
    version = version.decode() if isinstance(version, bytes) else str(version)
    major = version.split(".")[0]
    if major != str(SUPPORTED_NIR_MAJOR):
        raise NIRError(
            f"{os.fspath(path)} is NIR version {version}; spikeforge reads NIR {SUPPORTED_NIR_MAJOR}.x "
            f"(installed nir {nir.version}): convert it with a matching nir release"
        )
    try:
        return nir.read(path)
    except (KeyError, ValueError, TypeError) as err:
        raise NIRError(f"cannot read NIR graph {os.fspath(path)}: {type(err).__name__}: {err}") from None


def from_nir(graph, dt: float | None = None):
    """A spikeforge module running the NIR ``graph`` (or file path); see :mod:`spikeforge.interchange.nir_import`."""
    from .nir_import import from_nir as _from_nir

    if isinstance(graph, (str, os.PathLike)):
        graph = read_nir(graph)
    return _from_nir(graph, dt)

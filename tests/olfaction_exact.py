"""Small olfaction trainings whose every resulting tensor is compared bit for bit: the fused CPU path
against the pure-torch reference path (``tests/test_olfaction_fast.py``), and both against sha256
digests produced by the code before the fused path existed (``olfaction_golden.json``).

``python tests/olfaction_exact.py OUT.json`` writes the digests of every case with the checkout on
``sys.path`` (how ``olfaction_golden.json`` was made, on main at 814b8cc)."""

from __future__ import annotations

import hashlib
import itertools
import json
import sys

import torch

from spikeforge.experiments.scaffold.runtime import cpu_model
from spikeforge.models.olfaction import OlfactionNet, OlfactionNetParams

#: the experiment's network (olfaction_config._experiment_model) at a tiny size; STDP a +- raised
#: so that the STDP blocks move within a few batches
BASE = dict(
    layer_sizes=[6, 20, 8, 30],
    n_class=3,
    steps=12,
    burn_in=4,
    input_gain=1.0,
    init_scale=1.0,
    cuba={"reset": "subtract"},
    readout_ampl=4.0,
    stdp_fan_in=3,
    stdp_target_rate=0.1,
    stdp={"w_max": 0.15, "a_plus": 1e-3, "a_minus": 1e-3},
)
#: the grid the issue lists: mode x dtype x dropout x neuron x eligibility x encoding
GRID = {
    "mode": ("decolle", "hybrid"),
    "dtype": ("float32", "float64"),
    "readout_dropout": (0.0, 0.5),
    "neuron": ("cuba", "decolle"),
    "eligibility": ("trace", "step"),
    "encoding": ("current", "bernoulli"),
}
#: further options, one at a time on the float32 DECOLLE (or hybrid) network with dropout
EXTRA = {
    "tau": {"readout_tau_steps": 3.0},
    "reg": {"reg": 0.01, "neuron": "decolle"},
    "arctan": {"cuba": {"reset": "subtract", "surrogate": "arctan", "surrogate_slope": 2.0}},
    "exponential": {"cuba": {"reset": "zero", "surrogate": "exponential"}},
    "sign_none": {"sign_constraint": "none"},
    "overwrite": {"sign_constraint": "overwrite", "mode": "hybrid"},
    "smooth_l1": {"loss": "smooth_l1", "optimizer": "adamax"},
    "sgd_noise": {"optimizer": "sgd", "noise_std": 0.1, "readout_dropout": 0.3},
    "dense_stdp_soft": {"mode": "hybrid", "stdp_fan_in": 0, "stdp": {"bounds": "soft", "w_max": 0.5}},
    "trace_rule": {"mode": "hybrid", "stdp": {"rule": "trace", "w_max": 0.15}},
    "zeros_kept": {"mode": "hybrid", "stdp": {"ignore_zeros": False, "w_max": 0.15}, "stdp_block_idx": [1, 2]},
    "poisson_nohomeo": {"mode": "hybrid", "encoding": "poisson", "stdp_target_rate": 0.0},
}


def cases() -> dict[str, dict]:
    out = {}
    for values in itertools.product(*GRID.values()):
        kw = dict(zip(GRID, values))
        out["-".join(str(v) for v in values)] = kw
    for name, kw in EXTRA.items():
        out[name] = {"mode": "decolle", "dtype": "float32", "readout_dropout": 0.5, **kw}
    return out


def train(case: dict, fast: bool | None = None, batches: int = 3, batch: int = 5) -> dict[str, torch.Tensor]:
    """Train a fresh network of ``case`` on ``batches`` random batches, then evaluate one; every
    tensor that results (outputs, spike counts, weights, optimizer state). ``fast``: the path
    (None: the network's default)."""
    kw = dict(case)
    mode, dtype = kw.pop("mode"), getattr(torch, kw.pop("dtype"))
    kind = kw.pop("optimizer", "adam")
    kw.setdefault("stdp_block_idx", [2] if mode == "hybrid" else [])
    p = OlfactionNetParams.from_dict({**BASE, **kw})
    net = OlfactionNet(p, torch.Generator().manual_seed(0)).to_dtype(dtype)
    if fast is not None:
        net.fast = fast
    opt = net.make_optimizer(kind, 1e-2)
    g, gx = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    n_in = p.layer_sizes[0]
    out: dict[str, torch.Tensor] = {}
    for k in range(batches + 1):
        x = torch.rand(batch, n_in, generator=gx, dtype=dtype)
        y = torch.randint(0, p.n_class, (batch,), generator=gx)
        learn = k < batches
        res = net.run_batch(x, y if learn else None, opt if learn else None, g, record=k == 0, counts=True)
        out[f"logits{k}"] = res["logits"]
        out[f"loss{k}"] = torch.tensor([res["loss"], -1.0 if res["first_loss"] is None else res["first_loss"]])
        out[f"rates{k}"] = torch.tensor(res["rates"], dtype=torch.float64)
        out.update({f"counts{k}.{l}": c for l, c in enumerate(res["counts"])})
        if k == 0:
            out.update({f"record{t}.{l}": s for t, step in enumerate(res["record"]) for l, s in enumerate(step)})
    out.update(net.tensors())
    for i, prm in enumerate(net.trainable()):
        out[f"grad{i}"] = prm.grad
        for name, v in opt.state[prm].items():
            out[f"opt{i}.{name}"] = v
    return out


def digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:24]


def environment() -> dict[str, str]:
    """What the digests depend on beyond the code: torch's version, the CPU kernels it picks and the
    CPU itself (the same AVX512 kernels give other float32 roundings on an AMD EPYC than on the
    Intel Xeon the digests were made on)."""
    return {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_model": cpu_model(),
    }


if __name__ == "__main__":
    torch.set_num_threads(1)
    table = {"environment": environment(), "digests": {name: digest(train(c)) for name, c in cases().items()}}
    with open(sys.argv[1], "w") as fh:
        json.dump(table, fh, indent=1, sort_keys=True)
        fh.write("\n")

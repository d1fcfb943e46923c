"""spikeforge against snnTorch on the hybrid olfaction network (DECOLLE + STDP), side by side.

    python benchmarks/olfaction_vs_snntorch.py [--kc 2500] [--batches 2] [--batch 256] [--threads 1]
    python benchmarks/olfaction_vs_snntorch.py --kc 50 500 2500 5000 --batches 1

1. snnTorch is not a dependency: without it the script makes ``benchmarks/.venv-snntorch`` with
   ``benchmarks/helper_env.py`` (sees this interpreter's packages), installs snntorch and re-runs.
2. The network: small preset, ``layer_sizes = [50, 500, 50, KC]``, hybrid (STDP on PN -> KC with
   update cycles, clip bounds), 150 steps with a burn-in of 50, batch 256, Adam, cross-entropy local
   losses on fixed random readouts plus the trainable output readout; one optimizer step and one
   STDP step per time step after the burn-in; input gain 0.25. Both sides use lava's CUBA LIF with
   its reset to 0 (snnTorch's subtractive reset subtracts a residual above threshold one step later
   than ours, so only the reset to 0 is exactly the same neuron in both; the cost per step is the
   same), lava's detached-state gradient (``eligibility = "step"``), the fast-sigmoid surrogate and
   ``|W|`` for the blocks after the first.
3. The snnTorch version is written the way a user would: ``snn.Synaptic(alpha=0.75, beta=0.97,
   threshold=1.25, reset_mechanism="zero", reset_delay=False)`` (exactly lava's CUBA LIF), an
   ``nn.Linear`` per block, a Python loop over steps and blocks, the state detached at every step,
   ``loss.backward()`` + ``opt.step()`` per step, and the STDP rule written densely in PyTorch over
   ``[batch, n_pre, n_post]`` (as the original code does). Both start from identical weights and
   see the same batch; the first-step loss and the first-step gradients are compared.
4. Timing: ``--batches`` training batches each, alternating (one untimed warm-up batch for numba
   compilation on the spikeforge side). Writes ``benchmarks/out/olfaction_vs_snntorch.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from helper_env import ensure_package  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kc", type=int, nargs="+", default=[2500])
    ap.add_argument("--batches", type=int, default=2, help="timed batches per framework and KC size")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--check-only", action="store_true", help="only the first-step equivalence check")
    ap.add_argument("--spikeforge-only", action="store_true", help="only time spikeforge (no snnTorch, no check)")
    ap.add_argument("--out", default=str(HERE / "out" / "olfaction_vs_snntorch.json"))
    args = ap.parse_args()
    ensure_package("snntorch", "snntorch")

    import numpy as np
    import snntorch as snn
    import torch
    import torch.nn.functional as F
    from snntorch import surrogate
    from torch import nn

    from spikeforge.data.olfaction import load, preset
    from spikeforge.models.olfaction import OlfactionNet, OlfactionNetParams

    torch.set_num_threads(args.threads)
    data = load(preset("small"))

    class SnnTorchHybrid(nn.Module):
        def __init__(self, src: OlfactionNet):
            super().__init__()
            p = src.p
            self.p, self.stdp_set = p, src.stdp_set
            self.fcs = nn.ModuleList()
            for b, w in enumerate(src.weights):
                fc = nn.Linear(w.shape[1], w.shape[0])
                with torch.no_grad():
                    fc.weight.copy_(w)
                    fc.bias.copy_(src.biases[b])
                fc.requires_grad_(b not in src.stdp_set)
                self.fcs.append(fc)
            self.readouts = [src.readouts.get(b) for b in range(len(src.weights))]
            self.out = nn.Linear(src.out_w.shape[1], src.out_w.shape[0])
            with torch.no_grad():
                self.out.weight.copy_(src.out_w)
                self.out.bias.copy_(src.out_b)
            c = p.cuba
            sg = surrogate.fast_sigmoid(slope=c.surrogate_slope)
            kw = dict(alpha=1 - c.current_decay, beta=1 - c.voltage_decay, reset_delay=False)
            self.lif_in = snn.Synaptic(threshold=p.input_threshold, spike_grad=sg, reset_mechanism=p.input_reset, **kw)
            self.lifs = nn.ModuleList(
                snn.Synaptic(threshold=c.threshold, spike_grad=sg, reset_mechanism=c.reset, **kw) for _ in self.fcs
            )

        def stdp(self, w, pre, post, t, st):
            """The update-cycle rule, dense over [batch, n_pre, n_post]."""
            sp = self.p.stdp
            pre, post = pre.bool(), post.bool()
            st["last_pre"][pre] = t
            st["last_post"][post] = t
            P, Q, o = pre[:, :, None], post[:, None, :], st["open"]
            close = (P & (Q | (o == 2))) | (Q & ~P & (o == 1))
            st["open"] = torch.where(close, 0, torch.where(P, 1, torch.where(Q, 2, o))).to(torch.int8)
            dt = (st["last_post"][:, None, :] - st["last_pre"][:, :, None]).float()
            k = torch.where(
                dt >= 0,
                sp.a_plus * torch.exp(-dt / sp.tau_plus_steps),
                -sp.a_minus * torch.exp(dt / sp.tau_minus_steps),
            )
            mask = close & (dt != 0) if sp.ignore_zeros else close
            with torch.no_grad():
                w += (k * mask).sum(0).t() / pre.shape[0]
                w.clamp_(sp.w_min, sp.w_max)

        def train_batch(self, x, y, opt, capture=None):
            p = self.p
            B = x.shape[0]
            syn_in, mem_in = self.lif_in.init_synaptic()
            states = [lif.init_synaptic() for lif in self.lifs]
            st = {
                b: {
                    "last_pre": torch.zeros(B, self.fcs[b].in_features, dtype=torch.long),
                    "last_post": torch.zeros(B, self.fcs[b].out_features, dtype=torch.long),
                    "open": torch.zeros(B, self.fcs[b].in_features, self.fcs[b].out_features, dtype=torch.int8),
                }
                for b in self.stdp_set
            }
            first = None
            for t in range(p.steps):
                s, syn_in, mem_in = self.lif_in(p.input_gain * x, syn_in, mem_in)
                spikes, loss = [s], 0.0
                for b, (fc, lif) in enumerate(zip(self.fcs, self.lifs)):
                    w = fc.weight.abs() if b >= 1 else fc.weight
                    cur = F.linear(spikes[-1].detach().to(w.dtype), w, fc.bias)
                    syn, mem = states[b]
                    s, syn, mem = lif(cur, syn.detach(), mem.detach())
                    s = s.to(cur.dtype)  # snnTorch's spikes are float32 (matters only for the float64 check)
                    states[b] = (syn, mem)
                    spikes.append(s)
                    if t >= p.burn_in and b not in self.stdp_set:
                        loss = loss + F.cross_entropy(s @ self.readouts[b].t(), y)
                if t < p.burn_in:
                    continue
                loss = loss + F.cross_entropy(self.out(spikes[-1].detach()), y)
                opt.zero_grad()
                loss.backward()
                if first is None:
                    first = float(loss.detach())
                    if capture is not None:
                        capture.extend(q.grad.clone() for q in opt.param_groups[0]["params"])
                opt.step()
                for b in self.stdp_set:
                    self.stdp(self.fcs[b].weight, spikes[b], spikes[b + 1], t - p.burn_in, st[b])
            return first

    class Capture:
        def __init__(self, params):
            self.params, self.grads = params, None

        def step(self):
            if self.grads is None:
                self.grads = [q.grad.clone() for q in self.params]

    results = []
    for kc in args.kc:
        p = OlfactionNetParams(  # lava's CUBA (reset to 0) and detached-state gradient: snnTorch computes it exactly
            layer_sizes=[50, 500, 50, kc], stdp_block_idx=[-1], eligibility="step", input_reset="zero"
        )
        net = OlfactionNet(p, torch.Generator().manual_seed(0))
        ref = SnnTorchHybrid(net)
        x = torch.from_numpy(data["x_train"][: args.batch])
        y = torch.from_numpy(data["y_train"][: args.batch])
        if args.spikeforge_only:
            opt = net.make_optimizer("adam", 1e-4)
            net.run_batch(x, y, opt)  # warm-up (numba)
            xb, yb = torch.from_numpy(data["x_train"][args.batch : 2 * args.batch]), y
            t0, c0 = time.perf_counter(), time.process_time()
            net.run_batch(xb, yb[: len(xb)], opt)
            row = {
                "kc": kc,
                "samples_per_s": args.batch / (time.perf_counter() - t0),
                "cpu_seconds_per_batch": time.process_time() - c0,
            }
            print(f"KC = {kc}: spikeforge {row['samples_per_s']:.1f} samples/s", flush=True)
            results.append(row)
            continue
        # equivalence on the first update step: the loss and every gradient, in float64 (in float32
        # the two sum in a different order, and one spike that flips at the threshold during the
        # 50 burn-in steps changes the first-step loss in the 3rd decimal)
        torch.set_default_dtype(torch.float64)
        net_check = OlfactionNet(p, torch.Generator().manual_seed(0))
        ref_check = SnnTorchHybrid(net_check)
        cap = Capture(net_check.trainable())
        sf_first = net_check.run_batch(x.double(), y, cap)["first_loss"]
        params = [q for fc in ref_check.fcs for q in fc.parameters() if q.requires_grad]
        params += list(ref_check.out.parameters())
        grads: list = []
        st_first = ref_check.train_batch(x.double(), y, torch.optim.SGD(params, lr=0.0), capture=grads)
        max_grad_diff = max(float((a - b).abs().max()) for a, b in zip(cap.grads, grads))
        torch.set_default_dtype(torch.float32)
        print(
            f"KC = {kc}: first-step loss (float64) spikeforge {sf_first:.12f}  snnTorch {st_first:.12f}; "
            f"max |grad difference| {max_grad_diff:.3g}",
            flush=True,
        )
        if args.check_only:
            results.append(
                {
                    "kc": kc,
                    "first_loss_spikeforge": sf_first,
                    "first_loss_snntorch": st_first,
                    "max_grad_diff": max_grad_diff,
                    "dtype": "float64",
                }
            )
            continue
        # timing
        ref = SnnTorchHybrid(net)
        opt_sf = net.make_optimizer("adam", 1e-4)
        opt_st = torch.optim.Adam(
            params := [q for fc in ref.fcs for q in fc.parameters() if q.requires_grad] + list(ref.out.parameters()),
            lr=1e-4,
        )
        g = torch.Generator().manual_seed(0)
        net.run_batch(x, y, opt_sf, g)  # warm-up (numba)
        times = {"spikeforge": [], "snntorch": []}
        cpu = {"spikeforge": [], "snntorch": []}
        for k in range(args.batches):
            sl = slice((k + 1) * args.batch, (k + 2) * args.batch)
            xb, yb = torch.from_numpy(data["x_train"][sl]), torch.from_numpy(data["y_train"][sl])
            for name in ("snntorch", "spikeforge"):
                t0, c0 = time.perf_counter(), time.process_time()
                if name == "snntorch":
                    ref.train_batch(xb, yb, opt_st)
                else:
                    net.run_batch(xb, yb, opt_sf, g)
                times[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
        sps = {n: args.batch / min(v) for n, v in times.items()}
        row = {
            "kc": kc,
            "batch": args.batch,
            "steps": p.steps,
            "first_loss_spikeforge": sf_first,
            "first_loss_snntorch": st_first,
            "max_grad_diff": max_grad_diff,
            "samples_per_s": sps,
            "seconds_per_batch": times,
            "cpu_seconds_per_batch": cpu,
            "speedup_wall": sps["spikeforge"] / sps["snntorch"],
            "speedup_cpu": min(cpu["snntorch"]) / min(cpu["spikeforge"]),
        }
        print(
            f"KC = {kc}: samples/s spikeforge {sps['spikeforge']:.1f}, snnTorch {sps['snntorch']:.1f} "
            f"-> {row['speedup_wall']:.1f}x (CPU time {row['speedup_cpu']:.1f}x)",
            flush=True,
        )
        results.append(row)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "threads": args.threads,
        "snntorch": snn.__version__,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "loadavg_at_end": os.getloadavg(),
        "numpy": np.__version__,
    }
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

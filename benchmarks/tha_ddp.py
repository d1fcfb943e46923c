"""Data-parallel THA training: iterations per second with 1 and W processes, and where the time of
the synchronisation goes.

    python benchmarks/tha_ddp.py [--iters 24] [--rounds 2] [--procs 1 2] [--data-dir DIR]

Each round runs, one after the other (interleaved, so that the machine's load hits both alike),
``python -m torch.distributed.run --standalone --nproc-per-node W benchmarks/tha_ddp.py --worker``
for every W in ``--procs``. A worker trains the default snn-tha MNIST network (binarized, 100 steps,
batch 128 split between the W ranks, annealing, dropout) for 2 untimed + ``--iters`` timed
iterations with the hooks ``spikeforge tha mnist`` uses (:mod:`spikeforge.experiments.tha.distributed`,
:mod:`spikeforge.experiments.scaffold.parallel`):
sharded batch, synchronised batch norm, DDP, global loss, agreed interrupts; one torch thread per
rank. With W > 1 it also measures the time spent in collectives: the batch-norm all-reduces
(forward and backward, timed around ``torch.distributed.all_reduce``), the loss and interrupt
all-reduces, and DDP's gradient all-reduce (a communication hook that runs the same all-reduce but
waits for it, so the figure is the full cost, not only the part that backward does not hide).
Rank 0 writes its figures; the table and ``benchmarks/out/tha_ddp.json`` come from them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(args) -> None:
    import torch
    import torch.distributed as dist

    from spikeforge.data import load_dataset
    from spikeforge.evaluation.spike_losses import spike_count_mse
    from spikeforge.experiments.scaffold.parallel import AgreedInterrupts
    from spikeforge.experiments.tha.config import MnistConfig
    from spikeforge.experiments.tha.distributed import SINGLE, DataParallel
    from spikeforge.models.tha_nets import THAMnistNet
    from spikeforge.plasticity.threshold_annealing import ThresholdAnnealing

    torch.set_num_threads(1)
    world = int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo")
    dp = DataParallel() if world > 1 else SINGLE
    cfg = MnistConfig()
    n = args.batch * (args.iters + 2)
    X, Y = load_dataset(args.data_dir, "train", n)
    X = torch.from_numpy(X.astype("float32") / 255.0).unsqueeze(1)
    Y = torch.from_numpy(Y.astype("int64"))
    torch.manual_seed(0)
    net = THAMnistNet(cfg.model.replace(num_steps=args.steps))
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.train.lr, betas=cfg.train.betas)
    annealer = ThresholdAnnealing(net.lif_layers, cfg.anneal_params())
    model = dp.wrap(net)
    spent = {"bn_forward": 0.0, "bn_backward": 0.0, "loss_and_interrupt": 0.0, "gradients": 0.0}
    phase = ["loss_and_interrupt"]
    if world > 1:
        all_reduce = dist.all_reduce

        def timed(tensor, *a, **k):
            t = time.perf_counter()
            out = all_reduce(tensor, *a, **k)
            spent[phase[0]] += time.perf_counter() - t
            return out

        dist.all_reduce = timed

        def grad_hook(_state, bucket):
            t = time.perf_counter()
            buf = bucket.buffer().div_(world)
            all_reduce(buf)
            spent["gradients"] += time.perf_counter() - t
            fut = torch.futures.Future()
            fut.set_result(buf)
            return fut

        model.register_comm_hook(None, grad_hook)
    stop = AgreedInterrupts(dp) if world > 1 else None
    walls, cpus = [], []
    for it in range(args.iters + 2):
        if it == 2:
            for k in spent:
                spent[k] = 0.0
        t0, c0 = time.perf_counter(), time.process_time()
        idx = dp.shard(net, torch.arange(it * args.batch, (it + 1) * args.batch))
        phase[0] = "bn_forward"
        s, _ = model(X[idx])
        loss = dp.scale(spike_count_mse(s, Y[idx], cfg.train.correct_rate, cfg.train.incorrect_rate))
        opt.zero_grad(set_to_none=True)
        phase[0] = "bn_backward"
        loss.backward()
        phase[0] = "loss_and_interrupt"
        opt.step()
        annealer.step()
        dp.loss_value(loss)
        if stop is not None:
            stop.check()
        if it >= 2:
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    if dp.rank == 0:
        res = {
            "procs": world,
            "iters": args.iters,
            "iteration_wall_s_median": statistics.median(walls),
            "iterations_per_s": args.iters / sum(walls),
            "iteration_cpu_s_median": statistics.median(cpus),
            "collectives_s_per_iteration": {k: v / args.iters for k, v in spent.items()},
            "load_average": os.getloadavg(),
        }
        Path(args.json).write_text(json.dumps(res))
    dist.destroy_process_group()


def run_workers(script: str, procs: int, worker_args: list[str]) -> dict:
    """``script --worker --json FILE ...`` in ``procs`` processes (one standalone torchrun, one
    thread each); returns the JSON rank 0 wrote to FILE."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}"]
        cmd += [script, "--worker", "--json", str(out), *worker_args]
        subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        return json.loads(out.read_text())


def parse_driver(ap: argparse.ArgumentParser, out_name: str, worker) -> argparse.Namespace | None:
    """Add the flags of the data-parallel benchmarks' drivers (rounds, process counts, output) and of
    their workers, and parse; in a worker (``--worker``), run ``worker(args)`` and return None."""
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", default=str(HERE / "out" / out_name))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return None
    return args


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iters", type=int, default=24)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=100, help="time steps per image")
    ap.add_argument("--data-dir", default=os.environ.get("SPIKEFORGE_DATA", "../shared/data/mnist"))
    args = parse_driver(ap, "tha_ddp.json", worker)
    if args is None:
        return
    runs = []
    for r in range(args.rounds):
        for w in args.procs:
            worker_args = ["--iters", str(args.iters), "--batch", str(args.batch), "--steps", str(args.steps)]
            res = run_workers(__file__, w, [*worker_args, "--data-dir", args.data_dir])
            res["round"] = r
            runs.append(res)
            c = res["collectives_s_per_iteration"]
            wall, cpu = res["iteration_wall_s_median"], res["iteration_cpu_s_median"]
            parts = ", ".join(f"{k} {1000 * v:.1f} ms" for k, v in c.items())
            print(f"round {r} procs {w}: {res['iterations_per_s']:.3f} it/s (median {wall:.2f} s wall,", end=" ")
            print(f"{cpu:.2f} s CPU per rank), collectives per iteration {parts}, load {res['load_average'][0]:.1f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "runs": runs}, indent=2))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()

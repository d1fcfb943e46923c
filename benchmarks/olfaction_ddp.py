"""Data-parallel olfaction training: samples per second with 1 and W processes, and the cost of the
per-step synchronisation.

    python benchmarks/olfaction_ddp.py [--modes decolle hybrid ann] [--batches 3] [--rounds 2] [--procs 1 2]

Each round runs, one after the other (interleaved, so that the machine's load hits both alike),
``python -m torch.distributed.run --standalone --nproc-per-node W benchmarks/olfaction_ddp.py
--worker`` for every mode and every W in ``--procs``. A worker builds the ``olfaction run``
trainer of the ``small`` preset (KC ``--kc``, batch 256 split between the W ranks, float32, the
packaged config otherwise) with the hooks ``olfaction run --nproc-per-node`` uses
(:mod:`spikeforge.experiments.olfaction`) and trains 1 untimed + ``--batches`` timed batches
(``--ann-batches`` for the ANN), one torch thread per rank. With W > 1 it measures the time spent
in the flattened all-reduce of the gradients and STDP updates (once per update step in the
spiking modes, once per batch in the ANN; this includes waiting for the slower rank), and, after
training, the bare cost of one such all-reduce (``--reps`` back to back, both ranks ready).
Rank 0 writes its figures; the table and ``benchmarks/out/olfaction_ddp.json`` come from them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from tha_ddp import parse_driver, run_workers

HERE = Path(__file__).resolve().parent


def worker(args) -> None:
    import torch
    import torch.distributed as dist

    from spikeforge.experiments.olfaction import ONE_PROCESS, SPEC, Trainer, split_data
    from spikeforge.experiments.scaffold import resolve_config
    from spikeforge.experiments.scaffold.parallel import Ranks
    from spikeforge.models.data_parallel import BatchShard

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    world = dist.get_world_size()
    dp = Ranks() if world > 1 else ONE_PROCESS
    values = {"run.mode": args.mode, "run.kc": args.kc, "run.preset": "small", "run.batch_size": args.batch}
    cfg = resolve_config(SPEC, values=values).resolved()
    assert cfg.run.batch_size == args.batch
    data = split_data(cfg)
    trainer = Trainer(cfg, dp)
    spent, spent_cpu, sizes = [0.0], [0.0], []
    all_sum = BatchShard.all_sum

    def timed(self, tensors, scale=1.0):
        t, c = time.perf_counter(), time.process_time()
        all_sum(self, tensors, scale)
        spent[0] += time.perf_counter() - t
        spent_cpu[0] += time.process_time() - c
        sizes.append(sum(x.numel() for x in tensors))

    BatchShard.all_sum = timed  # type: ignore[method-assign]
    n = args.ann_batches if args.mode == "ann" else args.batches
    x, y, bs = data["x_train"], data["y_train"], args.batch
    walls, cpus, syncs, sync_cpus = [], [], [], []
    for i in range(n + 1):
        spent[0] = spent_cpu[0] = 0.0
        t0, c0 = time.perf_counter(), time.process_time()
        trainer.train_epoch(x[i * bs : (i + 1) * bs], y[i * bs : (i + 1) * bs], 0)
        if i >= 1:
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            syncs.append(spent[0])
            sync_cpus.append(spent_cpu[0])
    bare = None
    if world > 1:
        flat = torch.zeros(sizes[-1])
        dist.barrier()
        reps = []
        for _ in range(args.reps):
            t = time.perf_counter()
            dist.all_reduce(flat, group=dp.group)
            reps.append(time.perf_counter() - t)
        bare = statistics.median(reps)
    if dp.rank == 0:
        per_batch = len(sizes) // (n + 1)
        res = {
            "mode": args.mode,
            "procs": world,
            "batches": n,
            "samples_per_s": n * bs / sum(walls),
            "batch_wall_s_median": statistics.median(walls),
            "batch_cpu_s_median": statistics.median(cpus),
            "allreduce_s_per_batch": statistics.median(syncs),
            "allreduce_cpu_s_per_batch": statistics.median(sync_cpus),
            "allreduces_per_batch": per_batch,
            "allreduce_elements": sizes[-1] if sizes else 0,
            "bare_allreduce_s": bare,
            "load_average": os.getloadavg(),
        }
        Path(args.json).write_text(json.dumps(res))
    dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modes", nargs="+", default=["decolle", "hybrid", "ann"], choices=["decolle", "hybrid", "ann"])
    ap.add_argument("--batches", type=int, default=3, help="timed batches of the spiking modes")
    ap.add_argument("--ann-batches", type=int, default=16, help="timed batches of the ANN")
    ap.add_argument("--kc", type=int, default=2500)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--reps", type=int, default=200, help="back-to-back all-reduces for the bare cost")
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    args = parse_driver(ap, "olfaction_ddp.json", worker)
    if args is None:  # this was a worker
        return
    runs = []
    for r in range(args.rounds):
        for mode in args.modes:
            for w in args.procs:
                flags = ["--mode", mode, "--batches", str(args.batches), "--ann-batches", str(args.ann_batches)]
                flags += ["--kc", str(args.kc), "--batch", str(args.batch), "--reps", str(args.reps)]
                res = run_workers(__file__, w, flags)
                res["round"] = r
                runs.append(res)
                sync, wall = res["allreduce_s_per_batch"], res["batch_wall_s_median"]
                bare, sync_cpu = res["bare_allreduce_s"], res["allreduce_cpu_s_per_batch"]
                bare_s = f", bare {1e3 * bare:.2f} ms x {res['allreduces_per_batch']}" if bare else ""
                print(
                    f"round {r} {mode} procs {w}: {res['samples_per_s']:.1f} samples/s (median {wall:.2f} s wall, "
                    f"{res['batch_cpu_s_median']:.2f} s CPU per rank per batch), all-reduce {sync:.3f} s per batch "
                    f"({100 * sync / wall:.1f} %, CPU {sync_cpu:.3f} s){bare_s}, {res['allreduce_elements']} "
                    f"elements, load {res['load_average'][0]:.1f}",
                    flush=True,
                )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "runs": runs}, indent=2))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()

"""A stand-in experiment for the sweep tests: writes results.json like a real run, logs each start
and finish in its run directory, optionally sleeps (so that a worker can be killed mid-run) and
writes one record per epoch (so that pruning has something to watch)."""

import argparse
import json
import os
import time

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--set", action="append", default=[])
p.add_argument("--sleep", type=float, default=0.0)
p.add_argument("--epochs", type=int, default=1)
a = p.parse_args()
vals = dict(s.split("=", 1) for s in a.set)
x = float(vals.get("x", 0))
bonus = 0.1 if vals.get("y") == '"b"' else 0.0
os.makedirs(a.out, exist_ok=True)
with open(os.path.join(a.out, "events.log"), "a") as f:
    f.write(f"start:{os.getppid()}\n")  # the worker that runs it
epochs = []
for e in range(a.epochs):
    time.sleep(a.sleep / a.epochs)
    epochs.append({"epoch": e + 1, "val": (e + 1) * (1 - (x - 0.3) ** 2)})
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"epochs": epochs}, f)
acc = 1 - (x - 0.3) ** 2 + bonus + 0.01 * a.seed
with open(os.path.join(a.out, "results.json"), "w") as f:
    json.dump({"accuracy": acc, "epochs": epochs}, f)
with open(os.path.join(a.out, "events.log"), "a") as f:
    f.write("done\n")

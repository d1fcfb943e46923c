"""The Diehl & Cook (2015) protocol: train with STDP, assign labels, test by voting.

Stages (each resumable from the run directory):

``train``
    Present ``train_examples`` training images per epoch, in order (the original does not shuffle),
    with STDP and adaptive thresholds on. A checkpoint (weights, theta, delays, the engine's
    dynamic state and the position in the data) is written atomically every ``checkpoint_every``
    examples; running the command again resumes at the last checkpoint and draws exactly the same
    random numbers an uninterrupted run would have drawn (seeds are derived per example).
``assign``
    Freeze the network (no STDP, theta fixed) and assign each neuron the class of its highest
    mean response over ``label_examples`` training images (the paper's protocol: labels from the
    training set, not the test set).
``test``
    Present ``test_examples`` test images to the frozen network and classify each by voting: the
    class whose assigned neurons have the highest mean spike count.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field
from tqdm.auto import tqdm

from .. import __version__
from ..config import ConfigError, Params, apply_overrides, load_toml
from ..engines import example_key, make_engine
from ..evaluation.labels import ClassResponses, accuracy, assign_labels, confusion_matrix, vote
from ..io.checkpoint import atomic_write_json, checkpoint_exists, load_checkpoint, save_checkpoint
from ..models.diehl_cook import DiehlCookConfig, DiehlCookState, init_state

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "diehl_cook.toml"
STAGE_TRAIN, STAGE_LABEL, STAGE_TEST = 0, 1, 2


class RunParams(Params):
    """How an experiment is run (not part of the model)."""

    neurons: int = Field(100, gt=0)
    epochs: int = Field(1, ge=0)
    train_examples: int = Field(3000, ge=0, le=60000)
    label_examples: int = Field(3000, ge=1, le=60000)
    test_examples: int = Field(1000, ge=1, le=10000)
    seed: int = Field(0, ge=0)
    engine: Literal["numba", "torch"] = "numba"
    device: str | None = None
    batch_size: int = Field(1, ge=1)
    checkpoint_every: int = Field(2000, ge=1)
    running_window: int = Field(1000, ge=10)
    data_dir: str | None = None
    record_examples: int = Field(
        0, ge=0, le=1000, description="record the spikes of this many test examples (compiled engine)"
    )


class Experiment:
    """A Diehl & Cook run living in ``out`` (config, checkpoint, labels, results, figures)."""

    def __init__(self, out: str | Path, run: RunParams, model: DiehlCookConfig, quiet: bool = False):
        self.out = Path(out)
        self.run = run
        self.model = model
        self.quiet = quiet

    # ----------------------------------------------------------------- config
    @classmethod
    def from_sources(
        cls,
        out,
        config_path=None,
        overrides: list[str] | None = None,
        run_fields: dict[str, Any] | None = None,
        quiet=False,
    ) -> Experiment:
        """Defaults <- TOML file <- ``section.key=value`` overrides <- command-line flags.

        When ``out`` already holds a run (its ``config.json``), that run's settings replace the
        package defaults as the base, so ``assign``/``test``/``plot`` on a saved run need no flags
        beyond ``--out``; anything given on top still overrides them."""
        saved = Path(out) / "config.json"
        if saved.is_file():
            data = json.loads(saved.read_text())
            if not isinstance(data.get("run"), dict) or not isinstance(data.get("model"), dict):
                raise ConfigError(
                    f"{saved} is not a spikeforge Diehl & Cook config (no run/model sections); "
                    f"move it away or choose another --out directory"
                )
        else:
            data = load_toml(DEFAULT_CONFIG)
        if config_path:
            user = load_toml(config_path)
            unknown = set(user) - {"run", "model"}
            if unknown:
                raise ConfigError(f"unknown config section(s) {sorted(unknown)} in {config_path} (allowed: run, model)")
            for section in ("run", "model"):
                if section == "model":
                    for sub, vals in user.get("model", {}).items():
                        data.setdefault("model", {}).setdefault(sub, {}).update(vals)
                else:
                    data["run"].update(user.get("run", {}))
        data = apply_overrides(data, overrides or [])
        data["run"].update({k: v for k, v in (run_fields or {}).items() if v is not None})
        run = RunParams.from_dict(data["run"])
        model_dict = data.get("model", {})
        model_dict.setdefault("network", {})["n_neurons"] = run.neurons
        model = DiehlCookConfig.from_dict(model_dict)
        return cls(out, run, model, quiet)

    # ----------------------------------------------------------------- helpers
    @property
    def ckpt(self) -> Path:
        return self.out / "checkpoint"

    def _log(self, msg: str) -> None:
        if not self.quiet:
            tqdm.write(msg)

    def _data(self, split: str, limit: int):
        from ..data.mnist import load_dataset

        images, labels = load_dataset(self.run.data_dir, split, limit)
        return images.reshape(len(images), -1), labels.astype(np.int64)

    def _save(self, engine, progress: dict[str, Any]) -> None:
        st = engine.export_state()
        tensors = {"weights": st.weights, "theta": st.theta, "delays": st.delays}
        if hasattr(engine, "dynamic_state"):
            tensors.update({f"dyn.{k}": v for k, v in engine.dynamic_state().items()})
        meta = {
            "model": self.model.to_dict(),
            "run": self.run.to_dict(),
            "progress": progress,
            "engine": engine.name,
            "version": __version__,
        }
        save_checkpoint(self.ckpt, tensors, meta)

    def load(self) -> tuple[DiehlCookState, dict[str, np.ndarray], dict[str, Any]]:
        """The saved network; fails clearly when its shape disagrees with the config."""
        arrays, meta = load_checkpoint(self.ckpt)
        state = DiehlCookState(weights=arrays["weights"], theta=arrays["theta"], delays=arrays["delays"])
        saved_n = state.weights.shape[1]
        if saved_n != self.model.network.n_neurons or state.weights.shape[0] != self.model.network.n_input:
            raise ConfigError(
                f"the checkpoint in {self.out} holds a network of shape {tuple(state.weights.shape)} "
                f"(n_input x neurons) but the config asks for "
                f"({self.model.network.n_input}, {self.model.network.n_neurons}): pass --neurons {saved_n} "
                f"to use it, or choose a new --out directory to start a network of the new size"
            )
        saved_model = DiehlCookConfig.from_dict(meta["model"])
        if saved_model != self.model:
            diffs = _diff(saved_model.to_dict(), self.model.to_dict())
            raise ConfigError(
                f"the checkpoint in {self.out} was trained with a different model config "
                f"({'; '.join(diffs)}); use the same settings or a new --out directory"
            )
        dyn = {k[4:]: v for k, v in arrays.items() if k.startswith("dyn.")}
        return state, dyn, meta

    def _engine(self, state: DiehlCookState):
        return make_engine(self.run.engine, self.model, state, seed=self.run.seed, device=self.run.device)

    def _present(self, engine, images, learning, stage, epoch, start, stop, schedule=False):
        """Present images[start:stop] in chunks; yields (b0, b1, counts, attempts) per chunk.
        With ``schedule``, the STDP learning rates follow ``stdp.nu_decay`` over training examples."""
        bs = self.run.batch_size if engine.name == "torch" else 1
        stdp = self.model.stdp
        for b0 in range(start, stop, bs):
            b1 = min(stop, b0 + bs)
            if schedule and stdp.nu_decay != 1.0:
                engine.set_rate_scale(stdp.rate_scale(epoch * self.run.train_examples + b0))
            keys = [example_key(self.run.seed, stage, epoch, i) for i in range(b0, b1)]
            counts, attempts = engine.present(images[b0:b1], learning, keys)
            yield b0, b1, counts, attempts

    # ----------------------------------------------------------------- stages
    def _write_config(self) -> None:
        atomic_write_json(self.out / "config.json", {"run": self.run.to_dict(), "model": self.model.to_dict()})

    def train(self) -> dict[str, Any]:
        run = self.run
        self.out.mkdir(parents=True, exist_ok=True)
        if checkpoint_exists(self.ckpt):
            state, dyn, meta = self.load()  # validates the config against the saved network first
            progress = meta["progress"]
            engine = self._engine(state)
            if dyn and meta.get("engine") == engine.name and hasattr(engine, "load_dynamic_state"):
                engine.load_dynamic_state(dyn)
            self._log(f"resuming {self.out} at epoch {progress['epoch']}, example {progress['index']}")
        else:
            state = init_state(self.model, np.random.default_rng(run.seed))
            engine = self._engine(state)
            progress = {"epoch": 0, "index": 0, "examples_seen": 0, "train_seconds": 0.0, "attempts": 0}
        self._write_config()
        total = run.epochs * run.train_examples
        done = progress["epoch"] * run.train_examples + progress["index"]
        if done >= total:
            self._log(f"training already complete ({progress['examples_seen']} examples seen)")
            return progress
        images, labels = self._data("train", run.train_examples)
        window = min(run.running_window, max(run.train_examples, 10))
        recent_counts = np.zeros((window, self.model.network.n_neurons), np.int64)
        recent_labels = np.full(window, -1, np.int64)
        running_acc: float | None = None
        previous_assign: np.ndarray | None = None
        filled = 0
        bar = tqdm(total=total, initial=done, unit="ex", desc="train", disable=self.quiet, dynamic_ncols=True)
        since_ckpt = 0
        t_start = time.perf_counter()
        seconds_before = progress["train_seconds"]
        try:
            for epoch in range(progress["epoch"], run.epochs):
                start = progress["index"] if epoch == progress["epoch"] else 0
                for b0, b1, counts, attempts in self._present(
                    engine, images, True, STAGE_TRAIN, epoch, start, run.train_examples, schedule=True
                ):
                    for k, i in enumerate(range(b0, b1)):
                        recent_counts[filled % window], recent_labels[filled % window] = counts[k], labels[i]
                        filled += 1
                        if filled % window == 0:
                            # running accuracy as in the original: labels assigned on the previous
                            # window of training responses, scored on this one
                            if previous_assign is not None:
                                running_acc = accuracy(recent_labels, vote(recent_counts, previous_assign, 10))
                            previous_assign = assign_labels(recent_counts, recent_labels, 10)
                    progress.update(
                        epoch=epoch,
                        index=b1,
                        examples_seen=progress["examples_seen"] + (b1 - b0),
                        attempts=progress["attempts"] + int(attempts.sum()),
                    )
                    since_ckpt += b1 - b0
                    bar.update(b1 - b0)
                    if running_acc is not None:
                        bar.set_postfix(acc=f"{running_acc:.3f}", refresh=False)
                    if since_ckpt >= run.checkpoint_every:
                        progress["train_seconds"] = seconds_before + time.perf_counter() - t_start
                        self._save(engine, progress)
                        since_ckpt = 0
                progress.update(epoch=epoch + 1, index=0)
        finally:
            bar.close()
            progress["train_seconds"] = seconds_before + time.perf_counter() - t_start
            self._save(engine, progress)
        progress["running_accuracy"] = running_acc
        return progress

    def _responses(self, split: str, n: int, stage: int, consume) -> tuple[np.ndarray, float, float]:
        """Present ``n`` examples of ``split`` to the frozen network, handing each chunk's counts
        to ``consume(counts, labels)``; memory stays bounded by the chunk size."""
        state, _, _ = self.load()
        engine = self._engine(state)
        images, labels = self._data(split, n)
        attempts = 0
        t0 = time.perf_counter()
        with tqdm(
            total=len(images),
            unit="ex",
            desc=split if stage == STAGE_TEST else "assign",
            disable=self.quiet,
            dynamic_ncols=True,
        ) as bar:
            chunk: list[np.ndarray] = []
            first = 0
            record = stage == STAGE_TEST and self.run.record_examples > 0 and hasattr(engine, "start_recording")
            if record:
                recorded = self._record(engine, images[: self.run.record_examples], stage)
                self._save_recording(recorded)
            for b0, b1, c, a in self._present(engine, images, False, stage, 0, 0, len(images)):
                chunk.append(c)
                attempts += int(a.sum())
                bar.update(b1 - b0)
                if b1 - first >= 1024 or b1 == len(images):
                    consume(np.concatenate(chunk), labels[first:b1])
                    chunk, first = [], b1
        return labels, time.perf_counter() - t0, attempts / max(1, len(images))

    def _record(self, engine, images, stage):
        """Spikes of the first test examples, on a copy of the engine so the measured run is
        unaffected. Capped at 20,000 spikes per example."""
        state, _, _ = self.load()
        rec_engine = self._engine(state)
        out = []
        for i in range(len(images)):
            t0 = rec_engine.t
            rec_engine.start_recording(20_000)
            key = example_key(self.run.seed, stage, 0, i)
            rec_engine.present(images[i : i + 1], False, [key])
            steps_, neurons = rec_engine.stop_recording()
            out.append((i, steps_ - t0, neurons, rec_engine.t - t0))
        return out

    def _save_recording(self, recorded) -> None:
        from ..plotting.figures import plot_raster

        ex = np.concatenate([np.full(len(s), i, np.int32) for i, s, _, _ in recorded])
        steps_ = np.concatenate([s for _, s, _, _ in recorded]).astype(np.int64)
        neurons = np.concatenate([n for _, _, n, _ in recorded]).astype(np.int32)
        save_checkpoint(
            self.out / "test_spikes",
            {"example": ex, "step": steps_, "neuron": neurons},
            {
                "dt_ms": self.model.protocol.dt_ms,
                "examples": len(recorded),
                "note": "excitatory spikes of the first test examples; step counts from the "
                "start of each example's presentation (retries and rests included)",
            },
        )
        offsets = np.cumsum([0] + [n for _, _, _, n in recorded[:-1]])
        plot_raster(
            steps_ + np.repeat(offsets, [len(s) for _, s, _, _ in recorded]),
            neurons,
            self.out / "test_raster.png",
            dt_ms=self.model.protocol.dt_ms,
            n_neurons=self.model.network.n_neurons,
            title=f"excitatory spikes, first {len(recorded)} test examples",
            boundaries_ms=[o * self.model.protocol.dt_ms for o in offsets],
        )

    def assign(self) -> dict[str, Any]:
        responses = ClassResponses(self.model.network.n_neurons, 10)
        labels, seconds, mean_attempts = self._responses("train", self.run.label_examples, STAGE_LABEL, responses.add)
        assignments = responses.assignments()
        save_checkpoint(
            self.out / "labels",
            {"assignments": assignments, "class_mean_counts": responses.means()},
            {"label_examples": len(labels)},
        )
        info = {
            "label_examples": int(len(labels)),
            "label_seconds": seconds,
            "unassigned_neurons": int((assignments < 0).sum()),
            "label_mean_attempts": mean_attempts,
        }
        self._log(
            f"assigned labels from {len(labels)} training examples ({info['unassigned_neurons']} neurons never fired)"
        )
        return info

    def test(self) -> dict[str, Any]:
        self.load()  # the network must exist and match the config before anything else
        if not checkpoint_exists(self.out / "labels"):
            raise ConfigError(
                f"no label assignments in {self.out}: run `spikeforge diehl-cook assign --out {self.out}` first"
            )
        arrays, _ = load_checkpoint(self.out / "labels")
        assignments = arrays["assignments"]
        if assignments.shape[0] != self.model.network.n_neurons:
            raise ConfigError(
                f"labels in {self.out} are for {assignments.shape[0]} neurons, the network has "
                f"{self.model.network.n_neurons}: run `spikeforge diehl-cook assign` again"
            )
        preds: list[np.ndarray] = []
        spikes: list[np.ndarray] = []

        def consume(counts, _labels):
            preds.append(vote(counts, assignments, 10))
            spikes.append(counts.sum(1))

        labels, seconds, mean_attempts = self._responses("test", self.run.test_examples, STAGE_TEST, consume)
        pred = np.concatenate(preds)
        acc = accuracy(labels, pred)
        cm = confusion_matrix(labels, pred, 10)
        self._log(f"test accuracy {acc:.4f} on {len(labels)} examples")
        return {
            "accuracy": acc,
            "test_examples": int(len(labels)),
            "test_seconds": seconds,
            "test_mean_attempts": mean_attempts,
            "confusion_matrix": cm.tolist(),
            "mean_test_spikes": float(np.concatenate(spikes).mean()),
        }

    # ----------------------------------------------------------------- results
    def results_path(self) -> Path:
        return self.out / "results.json"

    def write_results(self, update: dict[str, Any]) -> dict[str, Any]:
        path = self.results_path()
        results = json.loads(path.read_text()) if path.is_file() else {}
        results.update(update)
        _, _, meta = self.load()
        prog = meta["progress"]
        results.update(
            {
                "neurons": self.model.network.n_neurons,
                "train_examples_seen": prog["examples_seen"],
                "train_seconds": prog["train_seconds"],
                "train_examples_per_second": prog["examples_seen"] / prog["train_seconds"]
                if prog["train_seconds"]
                else None,
                "train_mean_attempts": prog["attempts"] / prog["examples_seen"] if prog["examples_seen"] else None,
                "engine": self.run.engine,
                "seed": self.run.seed,
                "version": __version__,
                "run": self.run.to_dict(),
                "model": self.model.to_dict(),
            }
        )
        atomic_write_json(path, results)
        return results

    def plot(self) -> list[str]:
        from ..plotting.figures import plot_confusion, plot_histogram, plot_weight_grid

        state, _, _ = self.load()
        paths = [
            plot_weight_grid(state.weights, self.out / "weights.png"),
            plot_histogram(
                state.theta,
                self.out / "theta.png",
                xlabel="theta (mV)",
                title=f"adaptive thresholds, N = {state.theta.size}",
            ),
        ]
        res = json.loads(self.results_path().read_text()) if self.results_path().is_file() else {}
        if "confusion_matrix" in res:
            paths.append(plot_confusion(np.array(res["confusion_matrix"]), self.out / "confusion.png"))
        return [str(p) for p in paths]

    def run_all(self, plot: bool = True) -> dict[str, Any]:
        self.out.mkdir(parents=True, exist_ok=True)
        prog = self.train()
        info = self.assign()
        info.update(self.test())
        info["running_accuracy"] = prog.get("running_accuracy")
        results = self.write_results(info)
        if plot:
            results["figures"] = self.plot()
            atomic_write_json(self.results_path(), results)
        return results


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: saved {va!r}, now {vb!r}")
    return out

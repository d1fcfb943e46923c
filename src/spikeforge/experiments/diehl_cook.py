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

The two frozen stages checkpoint every ``checkpoint_every`` examples too and resume exactly, bound
to the network they started from (:mod:`.diehl_cook_stages`); ``run`` keeps labels already
assigned to the same network with the same settings.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..config import ConfigError
from ..engines import example_key, make_engine
from ..evaluation.labels import accuracy, confusion_matrix
from ..io.checkpoint import arrays_sha256
from ..models.diehl_cook import DiehlCookConfig, DiehlCookState, init_state
from .diehl_cook_config import SPEC, DiehlCookExperimentConfig, RunParams, check_memory
from .diehl_cook_stages import LabelTally, Stage, TestTally, binding, run_stage
from .diehl_cook_trainlog import RunningAccuracy, TrainLog, log_interval, stability_so_far
from .scaffold import InterruptedAtBoundary, RunDir, numpy_rng, resolve_config

STAGE_TRAIN, STAGE_LABEL, STAGE_TEST = 0, 1, 2
#: how the instability warning names an example of each stage
STAGE_NAMES = {STAGE_TRAIN: "training", STAGE_LABEL: "labelling", STAGE_TEST: "test"}
LABELLING = Stage(STAGE_LABEL, "labelling", "train", "label_stage", "assign")
TESTING = Stage(STAGE_TEST, "testing", "test", "test_stage", "test")
PROGRESS_FIELDS = ("epoch", "index", "examples_seen", "train_seconds", "attempts")

__all__ = ["SPEC", "DiehlCookExperimentConfig", "Experiment", "RunParams"]


class Experiment:
    """A Diehl & Cook run living in the run directory ``rd`` (config, checkpoint, labels, results,
    figures)."""

    def __init__(self, rd: RunDir):
        self.rd = rd
        self.out = rd.path
        cfg: DiehlCookExperimentConfig = rd.cfg  # type: ignore[assignment]
        self.cfg = cfg
        self.run: RunParams = cfg.run
        self.model: DiehlCookConfig = cfg.model
        self.quiet = rd.quiet

    @classmethod
    def from_sources(
        cls,
        out,
        config_path=None,
        overrides: list[str] | None = None,
        run_fields: dict[str, Any] | None = None,
        quiet=False,
        fresh: bool = False,
    ) -> Experiment:
        """From Python: the scaffold's config resolution (the run directory's saved run, else the
        packaged TOML <- ``config_path`` <- ``section.key=value`` overrides <- ``run_fields``, the
        ``[run]`` values plus ``neurons``), with the run directory opened and locked."""
        values = {f"run.{k}": v for k, v in (run_fields or {}).items() if k != "neurons"}
        if (run_fields or {}).get("neurons") is not None:
            values["model.network.n_neurons"] = run_fields["neurons"]  # type: ignore[index]
        rd = RunDir(out, SPEC, quiet=quiet)
        saved = None if fresh else rd.saved()
        cfg = resolve_config(SPEC, saved=saved, config_file=config_path, sets=overrides or [], values=values)
        return cls(rd.open(cfg, fresh=fresh))

    def close(self) -> None:
        self.rd.close()

    # ----------------------------------------------------------------- helpers
    @property
    def ckpt(self) -> Path:
        return self.out / "checkpoint"

    def _log(self, msg: str) -> None:
        self.rd.log(msg)

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
        self.rd.save_checkpoint("checkpoint", tensors, meta)

    def has_network(self) -> bool:
        """Whether the run directory holds a trained network (a vanished one is an error)."""
        return self.rd.has_checkpoint("checkpoint")

    def load(self, trained: bool = False) -> tuple[DiehlCookState, dict[str, np.ndarray], dict[str, Any]]:
        """The saved network; fails clearly when its shape or progress disagrees with the config.
        With ``trained``, the network must have finished the configured training."""
        if not self.has_network():
            raise ConfigError(
                f"no trained network in {self.out}: run `spikeforge diehl-cook train --out {self.out}` first"
            )
        arrays, meta = self.rd.load_checkpoint("checkpoint")
        where = f"the checkpoint in {self.out}"
        for name in ("weights", "theta", "delays"):
            if name not in arrays:
                raise ConfigError(f"{where} has no array '{name}': it is not a Diehl & Cook network; use another --out")
        if not isinstance(meta.get("model"), dict):
            raise ConfigError(
                f"{where} is not a Diehl & Cook checkpoint (written by {meta.get('experiment', 'another command')}); "
                "use another --out"
            )
        state = DiehlCookState(weights=arrays["weights"], theta=arrays["theta"], delays=arrays["delays"])
        saved_n = state.weights.shape[1]
        if saved_n != self.model.network.n_neurons or state.weights.shape[0] != self.model.network.n_input:
            raise ConfigError(
                f"{where} holds a network of shape {tuple(state.weights.shape)} "
                f"(n_input x neurons) but the config asks for "
                f"({self.model.network.n_input}, {self.model.network.n_neurons}): pass --neurons {saved_n} "
                f"to use it, or choose a new --out directory to start a network of the new size"
            )
        saved_model = DiehlCookConfig.from_dict(meta["model"])
        if saved_model != self.model:
            from .scaffold import diff

            diffs = [f"{k}: saved {a!r}, now {b!r}" for k, a, b in diff(saved_model.to_dict(), self.model.to_dict())]
            raise ConfigError(
                f"{where} was trained with a different model config "
                f"({'; '.join(diffs)}); use the same settings or a new --out directory"
            )
        meta["progress"] = self._check_progress(meta.get("progress"), trained)
        dyn = {k[4:]: v for k, v in arrays.items() if k.startswith("dyn.")}
        return state, dyn, meta

    def _check_progress(self, progress: Any, trained: bool) -> dict[str, Any]:
        where = f"the checkpoint in {self.out}"
        fix = "restore the checkpoint, or pass --fresh to start the run again"
        if not isinstance(progress, dict):
            raise ConfigError(f"{where} has no training progress record: {fix}")
        for k in PROGRESS_FIELDS:
            v = progress.get(k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                what = "is missing" if k not in progress else f"is {v!r}, not a number >= 0"
                raise ConfigError(f"{where}: progress field '{k}' {what}: {fix}")
        run = self.run
        if progress["index"] > run.train_examples or progress["index"] != int(progress["index"]):
            raise ConfigError(
                f"{where}: progress index {progress['index']} is past the end of the {run.train_examples} "
                f"training examples per epoch: {fix}"
            )
        done = progress["epoch"] * run.train_examples + progress["index"]
        if done > run.epochs * run.train_examples:
            raise ConfigError(
                f"the network in {self.out} has trained {progress['examples_seen']} examples "
                f"({progress['epoch']} epoch(s) of {run.train_examples}), more than --epochs {run.epochs} asks for: "
                f"give --epochs {progress['epoch']} or more, or use another --out (or --fresh) for a shorter run"
            )
        if trained and done < run.epochs * run.train_examples:
            raise ConfigError(
                f"the network in {self.out} has trained {int(done)} of the {run.epochs * run.train_examples} "
                f"examples its config asks for (--epochs {run.epochs}): run `spikeforge diehl-cook train --out "
                f"{self.out}` first"
            )
        return {k: int(progress[k]) if k != "train_seconds" else float(progress[k]) for k in PROGRESS_FIELDS} | {
            k: v for k, v in progress.items() if k not in PROGRESS_FIELDS
        }

    def _engine(self, state: DiehlCookState):
        if self.run.engine == "torch" and (self.run.device or "cpu").startswith("cpu"):
            print(
                "spikeforge: note: the torch engine on a CPU is about 340x slower than the compiled engine "
                "(--engine numba, the default); use it on a GPU (--device cuda) or for batched runs",
                file=sys.stderr,
            )
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
            suffix = f" of epoch {epoch}" if stage == STAGE_TRAIN else ""
            names = [f"{STAGE_NAMES[stage]} example {i}{suffix}" for i in range(b0, b1)]
            counts, attempts = engine.present(images[b0:b1], learning, keys, names=names)
            yield b0, b1, counts, attempts

    # ----------------------------------------------------------------- stages
    def train(self) -> dict[str, Any]:
        """Train (or resume, or continue with more epochs); Ctrl-C or a kill (SIGTERM) stops at the
        next example boundary and saves a checkpoint there."""
        run = self.run
        if self.has_network():
            state, dyn, meta = self.load()  # validates the config against the saved network first
            progress = meta["progress"]
            engine = self._engine(state)
            if dyn and meta.get("engine") == engine.name and hasattr(engine, "load_dynamic_state"):
                engine.load_dynamic_state(dyn)
            self._log(f"resuming {self.out} at epoch {progress['epoch']}, example {progress['index']}")
        else:
            check_memory(self.model)
            state = init_state(self.model, numpy_rng(run.seed))
            engine = self._engine(state)
            progress = {"epoch": 0, "index": 0, "examples_seen": 0, "train_seconds": 0.0, "attempts": 0}
        total = run.epochs * run.train_examples
        done = progress["epoch"] * run.train_examples + progress["index"]
        if done >= total:
            self._log(f"training already complete ({progress['examples_seen']} examples seen)")
            return progress
        images, labels = self._data("train", run.train_examples)
        running = RunningAccuracy(min(run.running_window, max(run.train_examples, 10)), self.model.network.n_neurons)
        since_ckpt = 0
        t_start = time.perf_counter()
        seconds_before = progress["train_seconds"]
        intro = f"{'resumed' if done else 'started'}: N = {self.model.network.n_neurons}, profile {run.profile}, "
        intro += f"engine {engine.name}, {total} examples"
        log = TrainLog(self.out, log_interval(run.log_every, total), progress["examples_seen"], intro)

        stability_before = progress.get("stability")

        def save() -> None:
            progress["train_seconds"] = seconds_before + time.perf_counter() - t_start
            stability = stability_so_far(stability_before, engine)
            if stability is not None:
                progress["stability"] = stability
            self._save(engine, progress)

        with log, self.rd.interrupts() as stop, self.rd.progress(total, initial=done, desc="train") as bar:
            try:
                for epoch in range(progress["epoch"], run.epochs):
                    start = progress["index"] if epoch == progress["epoch"] else 0
                    for b0, b1, counts, attempts in self._present(
                        engine, images, True, STAGE_TRAIN, epoch, start, run.train_examples, schedule=True
                    ):
                        for k, i in enumerate(range(b0, b1)):
                            running.add(counts[k], labels[i])
                        progress.update(
                            epoch=epoch,
                            index=b1,
                            examples_seen=progress["examples_seen"] + (b1 - b0),
                            attempts=progress["attempts"] + int(attempts.sum()),
                        )
                        log.add(counts, attempts)
                        if log.due(progress["examples_seen"]):
                            log.write(progress, running.value, engine)
                        since_ckpt += b1 - b0
                        bar.update(b1 - b0)
                        if running.value is not None:
                            bar.set_postfix(acc=f"{running.value:.3f}", refresh=False)
                        if since_ckpt >= run.checkpoint_every:
                            save()
                            since_ckpt = 0
                        stop.check()  # an interrupt lands here: between examples
                    progress.update(epoch=epoch + 1, index=0)
            except InterruptedAtBoundary:  # at an example boundary: the saved state is whole
                save()
                raise
        save()
        progress["running_accuracy"] = running.value
        return progress

    def _frozen(self, stage: Stage, n: int):
        """The frozen network, its stage binding and the stage's data (``n`` examples)."""
        state, _, meta = self.load(trained=True)
        bound = binding(self, state, meta["progress"], n)
        images, labels = self._data(stage.split, n)
        return state, bound, images, labels

    def current_labels(self) -> dict[str, Any] | None:
        """The record of ``labels.safetensors`` if it was assigned with this config to this very
        network (then ``run`` does not assign again), else None."""
        if not self.rd.has_checkpoint("labels"):
            return None
        arrays, meta = self.rd.load_checkpoint("labels")
        state, _, meta_net = self.load(trained=True)
        bound = binding(self, state, meta_net["progress"], self.run.label_examples)
        info = meta.get("info")
        if "assignments" not in arrays or meta.get("binding") != bound or not isinstance(info, dict):
            return None
        self._log(f"labels already assigned to this network from {info.get('label_examples')} examples: kept")
        self.rd.remove_checkpoint(LABELLING.checkpoint)  # one a kill left beside the finished labels
        return info

    def assign(self) -> dict[str, Any]:
        """Assign labels (resuming an interrupted labelling stage, :mod:`.diehl_cook_stages`)."""
        state, bound, images, labels = self._frozen(LABELLING, self.run.label_examples)
        tally = LabelTally(self.model.network.n_neurons)
        seconds, mean_attempts = run_stage(self, LABELLING, state, bound, tally, images, labels)
        assignments = tally.responses.assignments()
        info = {
            "label_examples": int(len(labels)),
            "label_seconds": seconds,
            "unassigned_neurons": int((assignments < 0).sum()),
            "label_mean_attempts": mean_attempts,
        }
        self.rd.save_checkpoint(
            "labels",
            {"assignments": assignments, "class_mean_counts": tally.responses.means()},
            {"label_examples": len(labels), "binding": bound, "info": info},
        )
        self.rd.remove_checkpoint(LABELLING.checkpoint)  # the stage's artefact is written
        self._log(
            f"assigned labels from {len(labels)} training examples ({info['unassigned_neurons']} neurons never fired)"
        )
        return info

    def _labels(self, bound: dict[str, Any]) -> np.ndarray:
        """The label assignments, checked against the config and the network of the test stage's
        binding ``bound``."""
        if not self.rd.has_checkpoint("labels"):
            raise ConfigError(
                f"no label assignments in {self.out}: run `spikeforge diehl-cook assign --out {self.out}` first"
            )
        arrays, meta = self.rd.load_checkpoint("labels")
        if "assignments" not in arrays:
            raise ConfigError(f"{self.out / 'labels.safetensors'} holds no label assignments: run assign again")
        again = f"run `spikeforge diehl-cook assign --out {self.out}"
        if meta.get("label_examples") not in (None, self.run.label_examples):
            raise ConfigError(
                f"the labels in {self.out} were assigned from {meta['label_examples']} training examples, "
                f"not --label-examples {self.run.label_examples}: {again} --label-examples {self.run.label_examples}` "
                "first"
            )
        made = meta.get("binding")
        if isinstance(made, dict) and made.get("network_sha256") != bound["network_sha256"]:
            raise ConfigError(
                f"the labels in {self.out} were assigned to the network after {made.get('train_examples_seen')} "
                f"training examples, which has changed since (now {bound['train_examples_seen']} examples): "
                f"{again}` first"
            )
        assignments = arrays["assignments"]
        if assignments.shape[0] != self.model.network.n_neurons:
            raise ConfigError(
                f"labels in {self.out} are for {assignments.shape[0]} neurons, the network has "
                f"{self.model.network.n_neurons}: {again}` again"
            )
        return assignments

    def test(self) -> dict[str, Any]:
        """Classify the test images by voting (resuming an interrupted test stage); the stage
        checkpoint goes once :meth:`write_results` has written the results."""
        state, bound, images, labels = self._frozen(TESTING, self.run.test_examples)
        assignments = self._labels(bound)
        bound["labels_sha256"] = arrays_sha256({"assignments": assignments})
        tally = TestTally(len(images), assignments)

        def record() -> None:
            if self.run.record_examples > 0:  # on a copy of the engine (both engines record)
                from .diehl_cook_record import record_test_spikes

                record_test_spikes(self, images[: self.run.record_examples], STAGE_TEST)

        seconds, mean_attempts = run_stage(self, TESTING, state, bound, tally, images, labels, on_start=record)
        acc = accuracy(labels, tally.predictions)
        cm = confusion_matrix(labels, tally.predictions, 10)
        self._log(f"test accuracy {acc:.4f} on {len(labels)} examples")
        return {
            "accuracy": acc,
            "test_examples": int(len(labels)),
            "test_seconds": seconds,
            "test_mean_attempts": mean_attempts,
            "confusion_matrix": cm.tolist(),
            "mean_test_spikes": float(tally.spikes.mean()),
        }

    # ----------------------------------------------------------------- results
    def results_path(self) -> Path:
        return self.out / "results.json"

    def write_results(self, update: dict[str, Any]) -> dict[str, Any]:
        """Merge ``update`` into results.json with the training record, the profile and provenance
        (:func:`.diehl_cook_results.write_results`)."""
        from .diehl_cook_results import write_results

        results = write_results(self, update)
        if "accuracy" in update:  # the test stage's artefact is written: its checkpoint is done
            self.rd.remove_checkpoint(TESTING.checkpoint)
        return results

    def plot(self) -> list[str]:
        from .diehl_cook_results import plot

        return plot(self)

    def run_all(self, plot: bool = True) -> dict[str, Any]:
        prog = self.train()
        info = self.current_labels() or self.assign()  # kept when this network has them (a resumed run)
        info.update(self.test())
        info["running_accuracy"] = prog.get("running_accuracy")
        results = self.write_results(info)
        if plot:
            from .diehl_cook_results import save

            results["figures"] = self.plot()
            results = save(self, results)
        return results

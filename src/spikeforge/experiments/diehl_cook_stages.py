"""The frozen stages of a Diehl & Cook run (labelling, testing): checkpointed and resumed exactly.

``assign`` and ``test`` present ``label_examples`` training images and ``test_examples`` test
images, in order, to the frozen network (no STDP, θ fixed); at N = 6400 that is about 50 minutes.
Like training, they survive a kill:

- every ``run.checkpoint_every`` examples, and at Ctrl-C or ``kill`` (at the next example
  boundary, :meth:`.scaffold.RunDir.interrupts`), the stage saves ``label_stage.safetensors`` or
  ``test_stage.safetensors`` atomically: the next example, what it has accumulated (the
  :class:`~spikeforge.evaluation.labels.ClassResponses` sums and counts while labelling; the
  prediction and spike total of each example so far while testing), the presentations made, the
  seconds spent, and the engine's dynamic state (membranes, conductances, traces, spikes in
  flight, the step counter: the frozen network's state carries over from one example to the next);
- running the command again resumes the stage there. The Poisson input of example ``i`` is drawn
  from ``example_key(seed, stage, 0, i)`` and the attempt number, which do not depend on where the
  stage started, and the engine continues from the saved dynamic state: the resumed stage sees
  exactly the spike counts of an uninterrupted one, so assignments, predictions and accuracy are
  the same bit for bit (with the compiled engine; the torch engine keeps no dynamic state in its
  checkpoints, so its resumed stage restarts the membranes at rest, which the log says);
- a stage checkpoint is bound (:func:`binding`) to the network it started from (SHA-256 of the
  weights, θ and delays), the number of examples, the seed, the engine and the model, and the
  test stage's also to the label assignments; one that disagrees is discarded with a log line and
  the stage starts again, nothing of it mixed into the new results;
- the finished stage writes its artefact (``labels.safetensors``; ``results.json`` for the test)
  and then removes its stage checkpoint.

Memory stays bounded: ``[10, N]`` sums while labelling, one prediction and one spike total per
test example (at most 10,000), and the counts of one chunk of :data:`CHUNK` examples.
Each start, resume, discard and checkpoint of a stage is a ``#`` line in ``train.log``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..evaluation.labels import ClassResponses, vote
from ..io.checkpoint import arrays_sha256
from ..models.diehl_cook import DiehlCookState
from .diehl_cook_trainlog import log_note
from .scaffold import InterruptedAtBoundary, diff

#: examples whose spike counts are handed to the tally together (memory: CHUNK x N counts)
CHUNK = 1024


@dataclass(frozen=True)
class Stage:
    """One frozen stage: its number in :func:`~spikeforge.engines.example_key`, its name in
    messages, the data split it presents, its checkpoint's name and its progress bar's label."""

    code: int
    word: str
    split: str
    checkpoint: str
    bar: str


class Tally:
    """What a stage accumulates, as named arrays that a checkpoint saves and restores in place."""

    def arrays(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def add(self, first: int, counts: np.ndarray, labels: np.ndarray) -> None:
        raise NotImplementedError

    def restore(self, saved: dict[str, np.ndarray]) -> None:
        for k, v in self.arrays().items():
            v[...] = saved[k]


class LabelTally(Tally):
    """Labelling: each neuron's summed spike counts per class and the examples per class."""

    def __init__(self, n_neurons: int):
        self.responses = ClassResponses(n_neurons, 10)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"sums": self.responses.sums, "examples_per_class": self.responses.examples_per_class}

    def add(self, first: int, counts: np.ndarray, labels: np.ndarray) -> None:
        self.responses.add(counts, labels)


class TestTally(Tally):
    """Testing: the vote of each example (-1 until presented) and its total spike count."""

    def __init__(self, n_examples: int, assignments: np.ndarray):
        self.assignments = assignments
        self.predictions = np.full(n_examples, -1, np.int64)
        self.spikes = np.zeros(n_examples, np.int64)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"predictions": self.predictions, "spikes": self.spikes}

    def add(self, first: int, counts: np.ndarray, labels: np.ndarray) -> None:
        self.predictions[first : first + len(counts)] = vote(counts, self.assignments, 10)
        self.spikes[first : first + len(counts)] = counts.sum(1)


def network_sha256(state: DiehlCookState) -> str:
    """The fingerprint of a trained network: SHA-256 of its weights, thresholds and delays."""
    return arrays_sha256({"weights": state.weights, "theta": state.theta, "delays": state.delays})


def binding(exp, state: DiehlCookState, progress: dict[str, Any], examples: int, **extra: Any) -> dict[str, Any]:
    """What a stage's checkpoint and result belong to (as JSON gives it back): the network, how
    far it was trained, the stage's example count, the seed, the engine and the model."""
    run = exp.run
    bound = {
        "network_sha256": network_sha256(state),
        "train_examples_seen": progress["examples_seen"],
        "examples": examples,
        "seed": run.seed,
        "engine": run.engine,
        "device": run.device,
        "batch_size": run.batch_size,
        "model": exp.model.to_dict(),
        **extra,
    }
    return json.loads(json.dumps(bound))


def run_stage(
    exp,
    stage: Stage,
    state: DiehlCookState,
    bound: dict[str, Any],
    tally: Tally,
    images: np.ndarray,
    labels: np.ndarray,
    on_start: Callable[[], None] | None = None,
) -> tuple[float, float]:
    """Present ``images`` to the frozen network ``state``, handing the counts to ``tally``, from
    the stage checkpoint if a valid one exists (``on_start`` runs only when the stage starts at
    example 0); returns (seconds, mean presentations per example), both over all sessions."""
    rd = exp.rd
    n = len(images)
    engine = exp._engine(state)
    start, seconds, attempts = _resume(exp, stage, n, bound, tally, engine)
    if start == 0:
        _say(exp, f"{stage.word}: {n:,} examples")
        if on_start is not None:
            on_start()
    pending: list[np.ndarray] = []
    first = pos = start
    since = 0
    t0 = time.perf_counter()

    def flush() -> None:
        nonlocal first
        if pending:
            tally.add(first, np.concatenate(pending), labels[first:pos])
            pending.clear()
        first = pos

    def save(interrupted: bool = False) -> None:
        flush()
        elapsed = time.perf_counter() - t0
        dyn = engine.dynamic_state() if hasattr(engine, "dynamic_state") else {}
        meta = {
            "stage": stage.word,
            "binding": bound,
            "next": pos,
            "examples": n,
            "seconds": seconds + elapsed,
            "attempts": attempts,
            "engine": engine.name,
        }
        tensors = tally.arrays() | {f"dyn.{k}": v for k, v in dyn.items()}
        rd.save_checkpoint(stage.checkpoint, tensors, meta, recorded=False)
        rate = f"{(pos - start) / elapsed:.2f}" if elapsed > 0 else "inf"
        what = "interrupted, checkpoint" if interrupted else "checkpoint"
        log_note(exp.out, f"{stage.word}: {what} at example {pos:,} of {n:,} ({rate} ex/s since {start:,})")

    with rd.interrupts() as stop, rd.progress(n, initial=start, desc=stage.bar) as bar:
        try:
            for b0, b1, counts, a in exp._present(engine, images, False, stage.code, 0, start, n):
                pending.append(counts)
                attempts += int(a.sum())
                pos = b1
                bar.update(b1 - b0)
                if b1 - first >= CHUNK or b1 == n:
                    flush()
                since += b1 - b0
                if since >= exp.run.checkpoint_every and b1 < n:
                    save()
                    since = 0
                stop.check()  # an interrupt lands here: between examples
        except InterruptedAtBoundary:  # the state after a whole example: save it, then stop
            save(interrupted=True)
            raise
    seconds += time.perf_counter() - t0
    rate = f"{(n - start) / (time.perf_counter() - t0):.2f}" if n > start else "-"
    log_note(exp.out, f"{stage.word}: done, {n:,} examples ({rate} ex/s since {start:,})")
    return seconds, attempts / max(1, n)


def _say(exp, msg: str) -> None:
    exp.rd.log(msg)
    log_note(exp.out, msg)


def _resume(exp, stage: Stage, n: int, bound: dict[str, Any], tally: Tally, engine) -> tuple[int, float, int]:
    """Restore ``tally`` and ``engine`` from the stage checkpoint; (next example, seconds, attempts),
    or (0, 0.0, 0) when there is none or it is stale (then it is deleted, with a log line)."""
    rd = exp.rd
    if not rd.has_checkpoint(stage.checkpoint):
        return 0, 0.0, 0
    arrays, meta = rd.load_checkpoint(stage.checkpoint)
    dyn = {k[4:]: v for k, v in arrays.items() if k.startswith("dyn.")}
    mine = engine.dynamic_state() if hasattr(engine, "dynamic_state") else {}
    why = (
        _stale(meta, bound, n)
        or _misfit(arrays, tally.arrays(), "the accumulated")
        or (_misfit(dyn, mine, "the network's dynamic") if meta.get("engine") == engine.name else None)
    )
    if why is not None:
        _say(
            exp,
            f"discarding the stale {stage.word} checkpoint ({stage.checkpoint}.safetensors: {why}); "
            f"{stage.word} starts again at example 0",
        )
        rd.remove_checkpoint(stage.checkpoint)
        return 0, 0.0, 0
    tally.restore(arrays)
    exact = bool(mine) and meta.get("engine") == engine.name and bool(engine.load_dynamic_state(dyn))
    start = int(meta["next"])
    _say(exp, f"resuming {stage.word} at example {start:,} of {n:,}")
    if not exact:
        _say(
            exp,
            f"note: the {engine.name} engine's membranes and traces are not in the checkpoint: {stage.word} "
            "continues with them at rest (not bit-identical to an uninterrupted stage)",
        )
    return start, float(meta["seconds"]), int(meta["attempts"])


def _stale(meta: dict[str, Any], bound: dict[str, Any], n: int) -> str | None:
    """Why the stage checkpoint ``meta`` cannot continue the stage ``bound`` of ``n`` examples."""
    saved = meta.get("binding")
    if not isinstance(saved, dict):
        return "it records no network it belongs to"
    if saved.get("network_sha256") != bound["network_sha256"]:
        return (
            f"it belongs to the network after {saved.get('train_examples_seen')} training examples, which has "
            f"changed since (now {bound['train_examples_seen']} examples)"
        )
    diffs = diff(saved, bound)
    if diffs:
        shown = "; ".join(f"{k} was {a!r}, now {b!r}" for k, a, b in diffs[:3])
        return f"it was started with other settings ({shown}{'; ...' if len(diffs) > 3 else ''})"
    for key, top in (("next", n), ("attempts", None), ("seconds", None)):
        v = meta.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (top is not None and v > top):
            return f"its record '{key}' is {v!r}"
    if meta.get("examples") != n:
        return f"it was made for {meta.get('examples')!r} examples, not {n}"
    return None


def _misfit(saved: dict[str, np.ndarray], mine: dict[str, np.ndarray], what: str) -> str | None:
    """Why the arrays ``saved`` cannot replace ``mine`` (a missing name, another shape or dtype)."""
    for k, v in mine.items():
        s = saved.get(k)
        if s is None or s.shape != v.shape or s.dtype != v.dtype:
            got = "missing" if s is None else f"{s.dtype}{list(s.shape)}"
            return f"{what} array '{k}' is {got}, expected {v.dtype}{list(v.shape)}"
    return None

"""The experiment scaffold: what every ``spikeforge`` experiment is built on.

Adding an experiment (say ``olfaction``) takes four pieces, each in its usual home:

1. **A config schema and its packaged default.** One :class:`~spikeforge.config.Params` class
   holding every section (building-block parameter objects such as ``ConductanceLIFParams`` carry
   the published defaults; experiment-level sections carry the experiment's), and
   ``src/spikeforge/configs/olfaction.toml`` with the values the experiment runs with. Where a key
   is in both, the two must agree (``tests/test_scaffold.py`` checks every experiment).

2. **A spec and its flags** (in ``experiments/olfaction.py``)::

       from spikeforge.experiments.scaffold import ExperimentSpec, Flag, positive_int

       SPEC = ExperimentSpec(
           name="olfaction", schema=OlfactionConfig, default_toml="olfaction.toml",
           default_out="runs/olfaction", seed_key="run.seed",
           continuable=("run.epochs", "run.test_examples"),  # may change on an existing run
       )
       FLAGS = (Flag("--epochs", "run.epochs", positive_int, "passes over the training set"),)

   A :class:`Flag` sets one config key; its default (shown in ``--help``) is read from the TOML.

3. **The experiment**, a function of the resolved config and an opened :class:`RunDir`::

       def run(cfg: OlfactionConfig, rd: RunDir) -> dict:
           start, w = 0, init(cfg, numpy_rng(cfg.run.seed))
           if rd.has_checkpoint("checkpoint"):           # resume (a vanished one is an error)
               arrays, meta = rd.load_checkpoint("checkpoint")
               start, w = meta["index"], arrays["w"]
           with rd.interrupts() as stop, rd.progress(n, initial=start, desc="train") as bar:
               try:
                   for i in range(start, n):
                       w = learn(w, i)                   # one example
                       bar.update(1)
                       stop.check()                      # Ctrl-C / kill land here, between examples
               except InterruptedAtBoundary:             # the state is whole: save it, then stop
                   rd.save_checkpoint("checkpoint", {"w": w}, {"index": i + 1})
                   raise
           rd.save_checkpoint("checkpoint", {"w": w}, {"index": n})
           return rd.write_results({"accuracy": acc}, engine="torch")

4. **The command** (``cli/olfaction.py``, registered in ``cli/main.py``)::

       def add_parser(sub):
           p = sub.add_parser("olfaction", help="...", description="...")
           add_arguments(p, SPEC, FLAGS)                 # --out --config --set --seed --quiet ...
           p.set_defaults(func=lambda args: _run(args))

       def _run(args):
           rd = start(SPEC, args, FLAGS)                 # None after --show-config
           if rd is None:
               return 0
           with rd:
               results = run(rd.cfg, rd)
           return 0

From Python, :func:`resolve_config` gives the same config as the command (``SPEC.default_config()``
is the packaged default), and ``RunDir(out, SPEC).open(cfg)`` the same run directory.
``tests/test_scaffold.py::test_a_new_experiment_built_from_the_guide`` builds one exactly like this.

What the scaffold guarantees, for every experiment alike:

- **One config merge**: the packaged TOML (or, on an existing run directory, the run's saved
  config) <- ``--config FILE`` <- ``--set section.key=value`` <- flags, merged table by table at
  every depth (:func:`~spikeforge.config.deep_merge`); an unknown key at any depth is an error
  naming the path and the allowed keys, a value where a section belongs (``model = 5``) too.
- **One run per directory** (:class:`RunDir`): ``config.json`` records the resolved config and the
  checkpoints the run saved; a later command whose config differs in a setting that does not
  continue the run is refused, naming the setting, both values and the fix (``--out`` elsewhere or
  ``--fresh``); a lock refuses a second command on the same directory; a recorded checkpoint that
  has disappeared is an error, not a silent restart; ``--out`` that is a file, under a file or
  read-only is refused clearly.
- **Checkpoints switch atomically** (:mod:`spikeforge.io.checkpoint`): one file, verified before it
  replaces the previous one, which is kept and used (with a warning) if the current one is corrupt.
- **Interrupts at example boundaries** (:class:`DeferredInterrupts`): Ctrl-C or ``kill`` sets a
  flag that ``stop.check()`` turns into :class:`KeyboardInterrupt` between examples.
- **Results with provenance**: :meth:`RunDir.write_results` adds the config and
  :func:`provenance` (package version, git commit and dirty flag, numpy/numba/torch/python
  versions, CPU model, thread counts, engine).
"""

from .cli import add_arguments, flag_values, nonneg_int, number, positive_int, resolve_args, start, whole
from .rundir import RunDir
from .runtime import (
    DeferredInterrupts,
    InterruptedAtBoundary,
    check_device,
    numpy_rng,
    progress_bar,
    provenance,
    set_threads,
    torch_generator,
    total_memory_bytes,
)
from .spec import ExperimentSpec, Flag, diff, resolve_config

__all__ = [
    "DeferredInterrupts",
    "ExperimentSpec",
    "Flag",
    "InterruptedAtBoundary",
    "RunDir",
    "add_arguments",
    "check_device",
    "diff",
    "flag_values",
    "nonneg_int",
    "number",
    "numpy_rng",
    "positive_int",
    "progress_bar",
    "provenance",
    "resolve_args",
    "resolve_config",
    "set_threads",
    "start",
    "torch_generator",
    "total_memory_bytes",
    "whole",
]

"""Diehl & Cook label assignment and voting, confusion matrices and accuracy (numpy, vectorised).

After unsupervised training, each excitatory neuron is given the class it responds to most, and an
example is classified by which class's neurons fire most (reference/diehl_cook.md §2.6; original
code ``get_new_assignments`` and ``get_recognized_number_ranking``):

1. **Assignment.** For each class ``c`` and neuron ``j``, the mean spike count of ``j`` over the
   examples of class ``c``; ``j`` gets the class with the largest mean, the first (lowest) class
   winning ties. See :func:`assign_labels`.
2. **Vote.** For each example and class ``c``, the mean spike count of the neurons assigned to
   ``c`` (0 for a class without neurons); the prediction is the class with the largest score.
   See :func:`vote`.

``counts`` is always ``[K examples, N neurons]`` (spike counts of the excitatory layer during each
presentation). For long label passes that should not keep ``[K, N]`` in memory, accumulate with
:class:`ClassResponses` and call :meth:`ClassResponses.assignments`.
"""

from __future__ import annotations

import numpy as np

UNASSIGNED = -1


def _as_counts(counts, name: str = "counts") -> np.ndarray:
    arr = np.asarray(counts.detach().cpu().numpy() if hasattr(counts, "detach") else counts)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [examples, neurons], got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numbers, got dtype {arr.dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinity")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative spike counts, found {arr.min()}")
    return arr


def _as_labels(labels, n_classes: int, k: int | None = None, name: str = "labels") -> np.ndarray:
    arr = np.asarray(labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{name} must be integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if k is not None and arr.shape[0] != k:
        raise ValueError(f"{name} has {arr.shape[0]} entries but counts has {k} examples (rows)")
    if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
        raise ValueError(
            f"{name} must lie in 0..{n_classes - 1} (n_classes={n_classes}), found "
            f"values from {arr.min()} to {arr.max()}"
        )
    return arr


def _check_n_classes(n_classes: int) -> int:
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
        raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}")
    return int(n_classes)


def class_mean_responses(counts, labels, n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """``(means [n_classes, N], examples_per_class [n_classes])``: each neuron's mean spike count
    over the examples of each class (0 for a class without examples)."""
    n_classes = _check_n_classes(n_classes)
    counts = _as_counts(counts)
    labels = _as_labels(labels, n_classes, counts.shape[0])
    acc = ClassResponses(counts.shape[1], n_classes)
    acc.add(counts, labels)
    return acc.means(), acc.examples_per_class.copy()


def assignments_from_means(means: np.ndarray) -> np.ndarray:
    """Assign each neuron (column of ``means [n_classes, N]``) to its class of largest mean
    response; first maximum wins; a neuron whose means are all 0 gets -1 (:data:`UNASSIGNED`)."""
    means = np.asarray(means, dtype=np.float64)
    if means.ndim != 2:
        raise ValueError(f"means must be [n_classes, neurons], got shape {means.shape}")
    if means.shape[0] == 0:
        return np.full(means.shape[1], UNASSIGNED, dtype=np.int64)
    out = np.argmax(means, axis=0).astype(np.int64)  # argmax returns the first maximum
    out[~(means > 0).any(axis=0)] = UNASSIGNED
    return out


def assign_labels(counts, labels, n_classes: int = 10) -> np.ndarray:
    """Diehl & Cook label assignment: ``assignments [N]`` (int64, class index or -1).

    ``counts [K, N]`` are the spike counts of N neurons on K labelled examples, ``labels [K]`` the
    classes. For each class, each neuron's mean spike count over that class's examples is computed;
    the neuron is assigned the class of the largest mean, the lowest class index winning ties (the
    original loops over classes in order and replaces only on a strictly larger mean). Classes with
    no examples have mean 0 and so never win against a class the neuron fired for.

    A neuron that never fires on any example gets -1 (unassigned), as in the original evaluation
    script ``Diehl&Cook_MNIST_evaluation.py``. The original *main* script
    (``Diehl&Cook_spiking_MNIST.py``) starts from ``np.zeros`` and so gives such neurons class 0,
    which makes silent neurons dilute the class-0 vote; map -1 to 0 to reproduce that.
    """
    means, _ = class_mean_responses(counts, labels, n_classes)
    return assignments_from_means(means)


def vote_scores(counts, assignments, n_classes: int = 10) -> np.ndarray:
    """Per-example class scores ``[K, n_classes]``: for each class, the mean spike count of the
    neurons assigned to it (0 for a class without neurons). Neurons with -1 take no part."""
    n_classes = _check_n_classes(n_classes)
    counts = _as_counts(counts)
    assign = np.asarray(assignments.detach().cpu().numpy() if hasattr(assignments, "detach") else assignments)
    if assign.ndim != 1 or assign.shape[0] != counts.shape[1]:
        raise ValueError(
            f"assignments must have one entry per neuron ({counts.shape[1]}, the columns "
            f"of counts), got shape {assign.shape}"
        )
    if assign.size and assign.dtype.kind not in "iu":
        raise ValueError(f"assignments must be integers, got dtype {assign.dtype}")
    assign = assign.astype(np.int64, copy=False)
    if assign.size and (assign.min() < UNASSIGNED or assign.max() >= n_classes):
        raise ValueError(
            f"assignments must lie in -1..{n_classes - 1}, found values from {assign.min()} to {assign.max()}"
        )
    member = np.zeros((assign.shape[0], n_classes), dtype=np.float64)
    assigned = assign >= 0
    member[np.flatnonzero(assigned), assign[assigned]] = 1.0
    n_per_class = member.sum(axis=0)
    sums = counts.astype(np.float64, copy=False) @ member  # [K, n_classes]
    return np.divide(sums, n_per_class, out=np.zeros_like(sums), where=n_per_class > 0)


def vote(counts, assignments, n_classes: int = 10, tie: str = "first") -> np.ndarray:
    """Diehl & Cook classification: ``predictions [K]`` (int64) from ``counts [K, N]``.

    The score of a class is the mean spike count of the neurons assigned to it (0 for a class
    without neurons; unassigned neurons, -1, are ignored); the prediction is the best-scoring class.

    ``tie="first"`` (default) picks the lowest class among equal scores, like ``np.argmax``; an
    example on which no assigned neuron fired is then predicted as class 0. The original code ranks
    with ``np.argsort(scores)[::-1]``; numpy's default sort of 10 values was an insertion sort,
    stable, so the reversal puts the *highest* tied class first (an all-silent example becomes 9).
    ``tie="last"`` reproduces that, whatever sort the installed numpy uses.
    """
    scores = vote_scores(counts, assignments, n_classes)
    if tie == "first":
        return np.argmax(scores, axis=1).astype(np.int64)
    if tie == "last":
        return (scores.shape[1] - 1 - np.argmax(scores[:, ::-1], axis=1)).astype(np.int64)
    raise ValueError(f"tie must be 'first' or 'last', got {tie!r}")


def confusion_matrix(true, pred, n_classes: int = 10) -> np.ndarray:
    """``cm [n_classes, n_classes]`` (int64): ``cm[t, p]`` counts examples of true class ``t``
    predicted as ``p`` (rows: true class, columns: prediction)."""
    n_classes = _check_n_classes(n_classes)
    true = _as_labels(true, n_classes, name="true")
    pred = _as_labels(pred, n_classes, true.shape[0], name="pred")
    return (
        np.bincount(true * n_classes + pred, minlength=n_classes * n_classes)
        .reshape(n_classes, n_classes)
        .astype(np.int64)
    )


def accuracy(true, pred) -> float:
    """Fraction (0..1, not percent) of examples where ``pred == true``."""
    true = np.asarray(true).ravel()
    pred = np.asarray(pred).ravel()
    if true.shape != pred.shape:
        raise ValueError(f"true has {true.size} entries but pred has {pred.size}")
    if true.size == 0:
        raise ValueError("accuracy of zero examples is undefined: pass at least one example")
    return float(np.mean(true == pred))


class ClassResponses:
    """Streaming sums for label assignment: memory ``[n_classes, N]`` however many examples.

    >>> acc = ClassResponses(n_neurons=400)
    >>> acc.add(counts_batch, labels_batch)      # as often as needed; 1-D counts = one example
    >>> assignments = acc.assignments()          # same result as assign_labels on all the rows
    """

    def __init__(self, n_neurons: int, n_classes: int = 10):
        if n_neurons < 0:
            raise ValueError(f"n_neurons must be >= 0, got {n_neurons}")
        self.n_classes = _check_n_classes(n_classes)
        self.sums = np.zeros((self.n_classes, int(n_neurons)), dtype=np.float64)
        self.examples_per_class = np.zeros(self.n_classes, dtype=np.int64)

    def add(self, counts, labels) -> None:
        counts = np.asarray(counts.detach().cpu().numpy() if hasattr(counts, "detach") else counts)
        if counts.ndim == 1:
            counts = counts[None, :]
            labels = np.atleast_1d(np.asarray(labels))
        counts = _as_counts(counts)
        if counts.shape[1] != self.sums.shape[1]:
            raise ValueError(
                f"counts has {counts.shape[1]} neurons (columns) but this accumulator was made for {self.sums.shape[1]}"
            )
        labels = _as_labels(labels, self.n_classes, counts.shape[0])
        for c in np.unique(labels):  # at most n_classes passes, each over that class's rows
            rows = counts[labels == c]
            self.sums[c] += rows.sum(axis=0, dtype=np.float64)
            self.examples_per_class[c] += rows.shape[0]

    def means(self) -> np.ndarray:
        n = self.examples_per_class[:, None].astype(np.float64)
        return np.divide(self.sums, n, out=np.zeros_like(self.sums), where=n > 0)

    def assignments(self) -> np.ndarray:
        return assignments_from_means(self.means())

import numpy as np
import pytest

from spikeforge.evaluation import (
    ClassResponses,
    accuracy,
    assign_labels,
    class_mean_responses,
    confusion_matrix,
    vote,
    vote_scores,
)


def test_assign_basic_means_not_sums():
    # 3 classes, 4 neurons. Class 0 has 1 example, class 1 has 2, class 2 has 1.
    counts = np.array(
        [
            [4, 0, 1, 0],  # class 0
            [3, 2, 0, 0],  # class 1
            [3, 2, 0, 0],  # class 1
            [0, 1, 5, 0],
        ]
    )  # class 2
    labels = np.array([0, 1, 1, 2])
    # neuron 0: means 4, 3, 0 -> 0 (the sum for class 1 would be 6: means matter, not sums)
    # neuron 1: means 0, 2, 1 -> 1; neuron 2: means 1, 0, 5 -> 2; neuron 3 never fires -> -1
    assert assign_labels(counts, labels, 3).tolist() == [0, 1, 2, -1]
    means, n = class_mean_responses(counts, labels, 3)
    np.testing.assert_allclose(means[:, 0], [4, 3, 0])
    assert n.tolist() == [1, 2, 1]


def test_assign_ties_first_class_wins():
    counts = np.array(
        [
            [2, 0, 1],
            [1, 3, 1],  # class 1 twice: neuron 0 mean 1.5 vs 2 for class 0 ...
            [2, 3, 1],
        ]
    )
    labels = np.array([0, 1, 1])
    # neuron 0: class 0 mean 2, class 1 mean 1.5 -> 0
    # neuron 1: 0 vs 3 -> 1; neuron 2: 1 vs 1 -> tie -> first (0)
    assert assign_labels(counts, labels, 2).tolist() == [0, 1, 0]
    # exact tie with unequal example numbers: 3/3 == 2/2
    counts = np.array([[1], [1], [1], [1], [1]])
    labels = np.array([1, 1, 1, 0, 0])
    assert assign_labels(counts, labels, 2).tolist() == [0]


def test_assign_class_without_examples_and_tensor_input():
    import torch

    counts = torch.tensor([[0, 2], [1, 0]])
    labels = torch.tensor([3, 5])
    out = assign_labels(counts, labels, 10)
    assert out.tolist() == [5, 3] and out.dtype == np.int64


def test_assign_rejects_bad_input():
    with pytest.raises(ValueError, match="counts has 2 examples"):
        assign_labels(np.zeros((2, 3)), [0, 1, 2])
    with pytest.raises(ValueError, match=r"0\.\.9"):
        assign_labels(np.zeros((2, 3)), [0, 10])
    with pytest.raises(ValueError, match="non-negative"):
        assign_labels(-np.ones((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="2-D"):
        assign_labels(np.zeros(3), [0, 1, 2])


def test_vote_means_over_assigned_neurons():
    assignments = np.array([0, 0, 1, 2, -1])
    counts = np.array(
        [
            [4, 0, 3, 0, 9],  # class 0 mean 2, class 1 mean 3 -> 1 (neuron 4 ignored)
            [4, 4, 3, 0, 0],  # class 0 mean 4 -> 0
            [0, 0, 0, 1, 0],
        ]
    )  # class 2 -> 2
    assert vote(counts, assignments, 3).tolist() == [1, 0, 2]
    np.testing.assert_allclose(vote_scores(counts, assignments, 3)[0], [2, 3, 0])


def test_vote_class_without_neurons_scores_zero():
    assignments = np.array([2, 2])  # classes 0, 1, 3 have no neurons
    counts = np.array([[1, 0], [0, 0]])
    scores = vote_scores(counts, assignments, 4)
    np.testing.assert_allclose(scores, [[0, 0, 0.5, 0], [0, 0, 0, 0]])
    # all-silent example: first maximum wins -> 0; the original's argsort()[::-1] gives the last
    assert vote(counts, assignments, 4).tolist() == [2, 0]
    assert vote(counts, assignments, 4, tie="last").tolist() == [2, 3]


def test_vote_ties():
    assignments = np.array([0, 1, 2])
    counts = np.array([[0, 5, 5], [7, 7, 7], [1, 0, 2]])
    assert vote(counts, assignments, 3).tolist() == [1, 0, 2]
    assert vote(counts, assignments, 3, tie="last").tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match="one entry per neuron"):
        vote(counts, np.array([0, 1]), 3)
    with pytest.raises(ValueError, match=r"-1\.\.2"):
        vote(counts, np.array([0, 1, 3]), 3)


def test_assign_then_vote_round_trip():
    rng = np.random.default_rng(0)
    n_classes, per_class = 4, 3
    assignments_true = np.repeat(np.arange(n_classes), per_class)
    labels = rng.integers(0, n_classes, 200)
    counts = rng.poisson(0.2, (200, n_classes * per_class))
    counts += 5 * (assignments_true[None, :] == labels[:, None])
    assignments = assign_labels(counts, labels, n_classes)
    assert assignments.tolist() == assignments_true.tolist()
    pred = vote(counts, assignments, n_classes)
    assert accuracy(labels, pred) == 1.0


def test_streaming_accumulator_matches_batch():
    rng = np.random.default_rng(1)
    counts = rng.poisson(1.0, (50, 7))
    counts[:, 6] = 0
    labels = rng.integers(0, 10, 50)
    acc = ClassResponses(7)
    acc.add(counts[:20], labels[:20])
    for i in range(20, 50):
        acc.add(counts[i], labels[i])
    assert acc.assignments().tolist() == assign_labels(counts, labels).tolist()
    assert acc.assignments()[6] == -1
    with pytest.raises(ValueError, match="made for 7"):
        acc.add(np.zeros((1, 8)), [0])


def test_confusion_and_accuracy():
    true = np.array([0, 1, 2, 2, 1])
    pred = np.array([0, 2, 2, 1, 1])
    cm = confusion_matrix(true, pred, 3)
    assert cm.tolist() == [[1, 0, 0], [0, 1, 1], [0, 1, 1]]
    assert cm.sum() == 5 and np.trace(cm) == 3
    assert accuracy(true, pred) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="zero examples"):
        accuracy([], [])
    with pytest.raises(ValueError):
        confusion_matrix(true, pred[:4], 3)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        confusion_matrix(true, np.array([0, 1, 2, 3, 0]), 3)

"""Evaluation: Diehl & Cook label assignment and voting, confusion matrices, accuracy."""

from .labels import (
    UNASSIGNED,
    ClassResponses,
    accuracy,
    assign_labels,
    assignments_from_means,
    class_mean_responses,
    confusion_matrix,
    vote,
    vote_scores,
)

__all__ = [
    "UNASSIGNED",
    "ClassResponses",
    "accuracy",
    "assign_labels",
    "assignments_from_means",
    "class_mean_responses",
    "confusion_matrix",
    "vote",
    "vote_scores",
]

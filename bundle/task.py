"""What a bundle's graphs compute beyond the encoder: its task, written as config.json's ``task`` entry (absent in
embedding bundles, which predate it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

TaskKind = Literal["embed", "classify", "sparse"]
ScoreActivation = Literal["softmax", "sigmoid", "none"]
TASKS = ("embed", "classify", "sparse")

# the task graphs' outputs
LOGITS = "logits"  # classify: (B, n_labels)
SPARSE_OUTPUTS = ("sparse_indices", "sparse_values")  # sparse: (N, 2) [row, vocabulary id] and (N,), nonzero only


@dataclass(frozen=True)
class TaskConfig:
    kind: TaskKind = "embed"
    labels: tuple[str, ...] = ()  # classify: id2label in id order; one label is a cross-encoder's score
    activation: ScoreActivation = "softmax"  # classify: logits -> scores, unless a request asks for raw scores

    def __post_init__(self) -> None:
        if self.kind not in TASKS:
            raise ValueError(f"task {self.kind!r} is not one of {', '.join(TASKS)}")
        if self.kind == "classify" and not self.labels:
            raise ValueError("a classification task needs at least one label")

    @property
    def name(self) -> str:
        """What /v1/models shows: a one-label classifier is a reranker (a cross-encoder's relevance score)."""
        return "rerank" if self.kind == "classify" and len(self.labels) == 1 else self.kind

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind == "classify":
            out.update(labels=list(self.labels), activation=self.activation)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TaskConfig:
        data = data or {}
        return cls(kind=data.get("kind", "embed"), labels=tuple(str(x) for x in data.get("labels", ())),
                   activation=data.get("activation", "softmax"))

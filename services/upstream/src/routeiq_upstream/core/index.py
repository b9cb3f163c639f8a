"""The prompt index: whitespace-normalised prompt text → the dataset rows that recorded it.

Built once at start from ``RoutingDataset`` tables. One prompt can sit in several datasets
(GSM8K questions reappear in LLMRouter's test split, LLMRouter's splits overlap); the index
keeps every row in the order the datasets were given, and a lookup for a model takes the first
row that recorded that model, so each dataset answers for the models it measured.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from routeiq.routing.datasets import RoutingDataset


def normalise(text: str) -> str:
    """The lookup key: runs of whitespace collapsed to one space, ends stripped."""
    return " ".join(text.split())


# eq=False: records compare and hash by identity (each row is one object), so they can key caches.
@dataclass(frozen=True, slots=True, eq=False)
class Record:
    """One dataset row: what each model scored on the prompt and what it answered."""

    dataset: str
    prompt_id: str
    prompt: str
    scores: dict[str, float]  # finite scores only
    responses: dict[str, str]  # non-empty answer texts only

    def has(self, model: str) -> bool:
        """Whether this row recorded anything (a score or an answer) for ``model``."""
        return model in self.scores or model in self.responses


@dataclass(frozen=True)
class DatasetSummary:
    """What one dataset contributes to the index."""

    name: str
    prompts: int
    models: tuple[str, ...]
    answers: int  # recorded answer texts


@dataclass
class PromptIndex:
    """Normalised prompt → records, and the models any dataset recorded."""

    records: dict[str, tuple[Record, ...]] = field(default_factory=dict)
    models: tuple[str, ...] = ()
    datasets: tuple[DatasetSummary, ...] = ()

    @classmethod
    def build(cls, tables: Sequence[RoutingDataset]) -> PromptIndex:
        """Index every row of ``tables``, in order (earlier tables win ties per model)."""
        records: dict[str, list[Record]] = {}
        models: dict[str, None] = {}
        summaries = []
        for table in tables:
            answers = 0
            for i, prompt in enumerate(table.prompts):
                row = table.scores[i]
                scores = {
                    m: float(row[j]) for j, m in enumerate(table.models) if math.isfinite(row[j])
                }
                texts = {m: t for m, t in table.responses[i].items() if t}
                answers += len(texts)
                record = Record(table.name, table.ids[i], prompt, scores, texts)
                records.setdefault(normalise(prompt), []).append(record)
            models.update(dict.fromkeys(table.models))
            summaries.append(DatasetSummary(table.name, len(table), table.models, answers))
        return cls(
            records={key: tuple(rows) for key, rows in records.items()},
            models=tuple(models),
            datasets=tuple(summaries),
        )

    def __len__(self) -> int:
        return len(self.records)

    def lookup(self, key: str) -> tuple[Record, ...]:
        """Every record of the normalised prompt ``key`` (empty when unknown)."""
        return self.records.get(key, ())

    def find(self, key: str, model: str) -> tuple[Record | None, Record | None]:
        """(the first record of ``key`` that recorded ``model``, the first record of ``key``)."""
        rows = self.records.get(key, ())
        for record in rows:
            if record.has(model):
                return record, rows[0]
        return None, rows[0] if rows else None

    def texts(self) -> Iterable[str]:
        """Every prompt and recorded answer, for pre-counting tokens."""
        for rows in self.records.values():
            for record in rows:
                yield record.prompt
                yield from record.responses.values()

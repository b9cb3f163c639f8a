"""The oracle matrix: two models' grades on one query → a policy label.

Both candidate models answer the same query and each answer is graded correct, partially
correct or wrong. The pair of grades is a cell of a 3×3 matrix (rows: the cheap model's grade;
columns: the strong model's), and each cell names a policy:

- ``Standard_Query``: the cheap model suffices;
- ``Complex_Query``: only the strong model succeeds;
- ``Ambiguous_Query``: neither, or both uncertain.

The mapping is configuration (``OracleMatrix.from_mapping``); ``DEFAULT_MATRIX`` is the one the
causal-LM routing design uses. Grades come from quality scores in [0, 1] (a judge's 1/0.5/0, a
benchmark's 1/0, a user's thumbs) through ``GradeScale``'s two cut points.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from routeiq.errors import ConfigError

Grade = Literal["correct", "partial", "wrong"]
Policy = Literal["Standard_Query", "Complex_Query", "Ambiguous_Query"]
GRADES: tuple[Grade, ...] = get_args(Grade)
POLICIES: tuple[Policy, ...] = get_args(Policy)

# Rows: the cheap model's grade; columns: the strong model's.
DEFAULT_MATRIX: dict[Grade, dict[Grade, Policy]] = {
    "correct": {
        "correct": "Standard_Query",
        "partial": "Standard_Query",
        "wrong": "Standard_Query",
    },
    "partial": {
        "correct": "Complex_Query",
        "partial": "Ambiguous_Query",
        "wrong": "Standard_Query",
    },
    "wrong": {"correct": "Complex_Query", "partial": "Complex_Query", "wrong": "Ambiguous_Query"},
}


@dataclass(frozen=True)
class GradeScale:
    """Quality in [0, 1] → grade: ``correct`` at or above ``correct_at``, ``wrong`` at or
    below ``wrong_at``, ``partial`` between (so 1/0.5/0 and binary scores both map exactly)."""

    correct_at: float = 0.75
    wrong_at: float = 0.25

    def __post_init__(self) -> None:
        if not 0.0 <= self.wrong_at < self.correct_at <= 1.0:
            raise ConfigError(
                f"grade cut points need 0 <= wrong_at < correct_at <= 1, got "
                f"wrong_at={self.wrong_at}, correct_at={self.correct_at}"
            )

    def grade(self, quality: float) -> Grade:
        if quality >= self.correct_at:
            return "correct"
        if quality <= self.wrong_at:
            return "wrong"
        return "partial"


@dataclass(frozen=True)
class OracleMatrix:
    """(cheap grade, strong grade) → policy, every one of the nine cells named."""

    cells: Mapping[tuple[Grade, Grade], Policy] = field(
        default_factory=lambda: {
            (cheap, strong): policy
            for cheap, row in DEFAULT_MATRIX.items()
            for strong, policy in row.items()
        }
    )

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Mapping[str, str]]) -> OracleMatrix:
        """``{cheap grade: {strong grade: policy}}``; ``ConfigError`` names what is missing
        or unknown (a partial matrix would leave some pairs of grades unlabelled)."""
        unknown_rows = sorted(set(raw) - set(GRADES))
        if unknown_rows:
            raise ConfigError(f"oracle matrix: unknown grade(s) {unknown_rows}; use {GRADES}")
        cells: dict[tuple[Grade, Grade], Policy] = {}
        for cheap in GRADES:
            row = raw.get(cheap)
            if row is None:
                raise ConfigError(f"oracle matrix: no row for the cheap model's grade {cheap!r}")
            unknown = sorted(set(row) - set(GRADES))
            if unknown:
                raise ConfigError(f"oracle matrix row {cheap!r}: unknown grade(s) {unknown}")
            for strong in GRADES:
                policy = row.get(strong)
                if policy not in POLICIES:
                    raise ConfigError(
                        f"oracle matrix cell {cheap}/{strong}: {policy!r} is not one of {POLICIES}"
                    )
                cells[(cheap, strong)] = policy
        return cls(cells)

    def policy(self, cheap: Grade, strong: Grade) -> Policy:
        return self.cells[(cheap, strong)]


def cell_name(cheap: Grade, strong: Grade) -> str:
    """``"<cheap grade>/<strong grade>"``, as shards and events spell a cell."""
    return f"{cheap}/{strong}"


@dataclass(frozen=True)
class OracleLabel:
    """One query's oracle verdict."""

    cheap_grade: Grade
    strong_grade: Grade
    policy: Policy

    @property
    def cell(self) -> str:
        return cell_name(self.cheap_grade, self.strong_grade)


@dataclass(frozen=True)
class Oracle:
    """Labels a query from its graded answers once both the cheap and the strong model's are
    known (None before: one grade alone says nothing about the other model)."""

    cheap: str
    strong: str
    scale: GradeScale = field(default_factory=GradeScale)
    matrix: OracleMatrix = field(default_factory=OracleMatrix)

    def __post_init__(self) -> None:
        if not self.cheap or not self.strong or self.cheap == self.strong:
            raise ConfigError(
                f"the oracle needs two different models, got cheap={self.cheap!r}, "
                f"strong={self.strong!r}"
            )

    def label(self, qualities: Mapping[str, float]) -> OracleLabel | None:
        cheap, strong = qualities.get(self.cheap), qualities.get(self.strong)
        if cheap is None or strong is None or cheap != cheap or strong != strong:  # NaN: ungraded
            return None
        cheap_grade, strong_grade = self.scale.grade(cheap), self.scale.grade(strong)
        return OracleLabel(cheap_grade, strong_grade, self.matrix.policy(cheap_grade, strong_grade))

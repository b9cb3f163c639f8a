"""The oracle matrix: grades from qualities, the default 3×3 mapping, configured matrices
refused unless whole, and a label only once both models are graded."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from routeiq.errors import ConfigError
from routeiq.routing.oracle import (
    DEFAULT_MATRIX,
    GRADES,
    GradeScale,
    Oracle,
    OracleMatrix,
    cell_name,
)

# The design's table, rows the cheap model's grade and columns the strong model's.
TABLE = """
correct  Standard Standard Standard
partial  Complex  Ambiguous Standard
wrong    Complex  Complex  Ambiguous
"""


def test_the_default_matrix_is_the_designs_table() -> None:
    matrix = OracleMatrix()
    for line in TABLE.strip().splitlines():
        cheap, *policies = line.split()
        for strong, policy in zip(GRADES, policies, strict=True):
            assert matrix.policy(cheap, strong) == f"{policy}_Query"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("quality", "grade"),
    [
        (1.0, "correct"),
        (0.75, "correct"),
        (0.5, "partial"),
        (0.26, "partial"),
        (0.25, "wrong"),
        (0.0, "wrong"),
    ],
)
def test_grades_from_quality(quality: float, grade: str) -> None:
    assert GradeScale().grade(quality) == grade


def test_cut_points_must_be_ordered_inside_the_unit_interval() -> None:
    for correct_at, wrong_at in ((0.5, 0.5), (0.2, 0.6), (1.2, 0.1), (0.9, -0.1)):
        with pytest.raises(ConfigError, match="cut points"):
            GradeScale(correct_at=correct_at, wrong_at=wrong_at)


def test_a_configured_matrix_must_name_every_cell_with_a_known_policy() -> None:
    whole = {c: dict(row) for c, row in DEFAULT_MATRIX.items()}
    whole["partial"]["partial"] = "Complex_Query"
    assert OracleMatrix.from_mapping(whole).policy("partial", "partial") == "Complex_Query"
    missing_row = {c: row for c, row in whole.items() if c != "wrong"}
    with pytest.raises(ConfigError, match="no row for the cheap model's grade 'wrong'"):
        OracleMatrix.from_mapping(missing_row)
    missing_cell = {**whole, "correct": {"correct": "Standard_Query", "partial": "Standard_Query"}}
    with pytest.raises(ConfigError, match="cell correct/wrong: None"):
        OracleMatrix.from_mapping(missing_cell)
    with pytest.raises(ConfigError, match="unknown grade"):
        OracleMatrix.from_mapping({**whole, "meh": whole["correct"]})
    with pytest.raises(ConfigError, match="'Easy' is not one of"):
        OracleMatrix.from_mapping({**whole, "wrong": {**whole["wrong"], "wrong": "Easy"}})


def test_a_label_needs_both_models_graded() -> None:
    oracle = Oracle(cheap="small", strong="big")
    assert oracle.label({"small": 1.0}) is None
    assert oracle.label({"small": 1.0, "big": math.nan}) is None
    label = oracle.label({"small": 0.0, "big": 1.0, "other": 0.0})
    assert label is not None
    assert (label.cell, label.policy) == ("wrong/correct", "Complex_Query")
    with pytest.raises(ConfigError, match="two different models"):
        Oracle(cheap="same", strong="same")


@given(
    st.floats(min_value=0, max_value=1, allow_nan=False),
    st.floats(min_value=0, max_value=1, allow_nan=False),
)
def test_every_pair_of_qualities_lands_in_its_cell(cheap: float, strong: float) -> None:
    scale = GradeScale()
    label = Oracle(cheap="small", strong="big").label({"small": cheap, "big": strong})
    assert label is not None
    assert label.cell == cell_name(scale.grade(cheap), scale.grade(strong))
    assert label.policy == DEFAULT_MATRIX[scale.grade(cheap)][scale.grade(strong)]

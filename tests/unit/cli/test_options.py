"""Options shared by several commands agree with the library they name."""

from __future__ import annotations

import click
import pytest
from routeiq.routing.featurizer import PIPELINES
from routeiq_cli.options import FEATURE_KINDS, key_values


def test_feature_kinds_are_the_libraries_pipelines_in_order() -> None:
    # Spelled out in the CLI so that its start does not import the featurizer.
    assert tuple(FEATURE_KINDS.choices) == PIPELINES


def test_key_values_keep_everything_after_the_first_equals_sign() -> None:
    assert key_values(["a=1", "b=x=y", "c="]) == [("a", "1"), ("b", "x=y"), ("c", "")]
    assert key_values(["knn.k=7"], key_has=".") == [("knn.k", "7")]


@pytest.mark.parametrize(("item", "key_has"), [("a", ""), ("=1", ""), ("k=7", ".")])
def test_malformed_key_values_are_refused_with_the_form_expected(item, key_has) -> None:
    with pytest.raises(click.BadParameter, match=f"expected TYPE.KEY=VALUE, got '{item}'"):
        key_values([item], expected="TYPE.KEY=VALUE", key_has=key_has)

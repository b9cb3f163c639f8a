"""The worker refuses to start, with the reason, when its configuration or topics are wrong."""

from __future__ import annotations

import pytest
from integration.labeler.helpers import LabelerProcess
from routeiq.contracts.topics import FEEDBACK_EVENTS

pytestmark = pytest.mark.integration


def _start(labeler_factory, **settings) -> tuple[int, str]:
    worker: LabelerProcess = labeler_factory(**settings)
    code = worker.wait(timeout=60)
    return code, worker.tail()


def test_invalid_configuration_exits_2(labeler_factory) -> None:
    code, log = _start(labeler_factory, window_size_s=-1)
    assert code == 2
    assert "invalid configuration" in log
    assert "window_size_s" in log


def test_missing_topics_exit_1(labeler_factory) -> None:
    code, log = _start(labeler_factory, deadletter_topic="no.such.topic.anywhere")
    assert code == 1
    assert "no.such.topic.anywhere do not exist" in log


def test_topics_that_are_not_co_partitioned_exit_1(labeler_factory, topic_factory) -> None:
    three = topic_factory(FEEDBACK_EVENTS, partitions=3)
    code, log = _start(labeler_factory, feedback_topic=three.name)
    assert code == 1
    assert "co-partitioned" in log


def test_an_unregistered_dead_letter_subject_exits_1(labeler_factory, topic_factory) -> None:
    from routeiq.contracts.topics import DEAD_LETTERS

    unregistered = topic_factory(DEAD_LETTERS)
    code, log = _start(labeler_factory, deadletter_topic=unregistered.name)
    assert code == 1
    assert f"{unregistered.name}-value" in log
    assert "not registered" in log

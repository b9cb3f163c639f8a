"""The prompt index and what it answers: recorded texts, scored stand-ins, unrecorded hashes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from routeiq.routing.datasets import GPT4, MIXTRAL, RoutingDataset
from routeiq_upstream.core import Answerer, AnswerKind, PromptIndex, normalise
from routeiq_upstream.core.answers import OFFLINE_TAG, unrecorded_text


def test_index_keys_are_whitespace_normalised_and_case_sensitive(index: PromptIndex) -> None:
    assert len(index) == 4  # "Name a colour." is shared by both tables
    assert index.lookup("What is 2+2?")[0].prompt_id == "tiny-0"
    assert index.lookup(normalise("  What   is\t2+2?  "))[0].prompt_id == "tiny-0"
    assert index.lookup("what is 2+2?")[0].prompt_id == "scores-0"
    assert index.lookup("What is 2+2") == ()


def test_index_keeps_every_table_in_order_and_drops_missing_values(index: PromptIndex) -> None:
    shared = index.lookup("Name a colour.")
    assert [r.dataset for r in shared] == ["tiny", "scores"]
    only_gpt4 = index.lookup("Only GPT-4 was asked this.")[0]
    # NaN scores and empty texts are not records.
    assert only_gpt4.scores == {GPT4: 0.0}
    assert only_gpt4.responses == {GPT4: "An answer."}
    assert not only_gpt4.has(MIXTRAL)
    assert index.models == (GPT4, MIXTRAL, "small-model", "big-model")
    assert [(d.name, d.prompts, d.answers) for d in index.datasets] == [
        ("tiny", 3, 4),
        ("scores", 2, 0),
    ]


def test_find_takes_the_first_table_that_recorded_the_model(index: PromptIndex) -> None:
    record, first = index.find("Name a colour.", "big-model")
    assert record is not None
    assert first is not None
    assert (record.dataset, first.dataset) == ("scores", "tiny")
    assert index.find("Name a colour.", GPT4)[0] is first
    only_gpt4 = index.lookup("Only GPT-4 was asked this.")[0]
    assert index.find("Only GPT-4 was asked this.", MIXTRAL) == (None, only_gpt4)
    assert index.find("unknown", GPT4) == (None, None)


def test_recorded_answer_is_the_dataset_text_with_its_score(index: PromptIndex) -> None:
    answer = Answerer(index=index).answer("What is 2+2?", MIXTRAL)
    assert (answer.text, answer.kind, answer.score) == ("5", AnswerKind.RECORDED, 0.0)
    assert (answer.prompt_id, answer.dataset, answer.known) == ("tiny-0", "tiny", True)


def test_score_without_text_gives_a_stand_in_that_says_so(index: PromptIndex) -> None:
    answerer = Answerer(index=index)
    answer = answerer.answer("Name a colour.", "big-model")
    assert answer.kind is AnswerKind.SCORED
    assert answer.known
    assert (answer.score, answer.dataset, answer.prompt_id) == (1.0, "scores", "scores-1")
    assert answer.text.startswith(OFFLINE_TAG)
    assert "no answer text of big-model" in answer.text
    assert "1.0000" in answer.text
    # Mixtral has a score (1.0) but no text in the first table: a stand-in from that table.
    mixtral = answerer.answer("Name a colour.", MIXTRAL)
    assert (mixtral.kind, mixtral.dataset, mixtral.score) == (AnswerKind.SCORED, "tiny", 1.0)
    assert answerer.answer("Name a colour.", "big-model") is answer  # built once


def test_known_prompt_without_a_record_of_the_model_is_unrecorded(index: PromptIndex) -> None:
    answer = Answerer(index=index).answer("Only GPT-4 was asked this.", MIXTRAL)
    assert answer.kind is AnswerKind.UNRECORDED
    assert not answer.known
    assert (answer.prompt_id, answer.dataset, answer.score) == ("tiny-2", "tiny", None)
    assert "NOT RECORDED" in answer.text
    assert "not with an answer or score of" in answer.text


def test_unknown_prompt_is_deterministic_and_depends_on_prompt_and_model(
    index: PromptIndex,
) -> None:
    answerer = Answerer(index=index)
    a = answerer.answer("never seen", GPT4)
    assert a == Answerer(index=index).answer("never seen", GPT4)
    assert a.text != answerer.answer("never seen", MIXTRAL).text
    assert a.text != answerer.answer("never seen!", GPT4).text
    assert (a.kind, a.dataset, a.score) == (AnswerKind.UNRECORDED, "none", None)
    assert a.prompt_id.startswith("unrecorded-")
    assert len(a.prompt_id) == len("unrecorded-") + 16
    assert a.text.startswith(f"{OFFLINE_TAG} NOT RECORDED: this prompt is not in the recorded")


@given(st.text(max_size=200), st.sampled_from([GPT4, MIXTRAL, "x"]))
def test_unrecorded_text_is_a_pure_function(key: str, model: str) -> None:
    text = unrecorded_text(model=model, key=key, prompt_known=False)
    assert text == unrecorded_text(model=model, key=key, prompt_known=False)
    assert "NOT RECORDED" in text
    n_words = len(text.rsplit("means nothing: ", 1)[1].rstrip(".").split())
    assert 12 <= n_words <= 75


@given(st.text())
def test_normalise_is_idempotent_and_has_no_edge_or_double_spaces(text: str) -> None:
    key = normalise(text)
    assert normalise(key) == key
    assert key == key.strip()
    assert "  " not in key
    assert key.split() == text.split()


def test_every_benchmark_answer_is_served_verbatim(
    benchmark_tables: dict[str, RoutingDataset],
) -> None:
    tables = list(benchmark_tables.values())
    index = PromptIndex.build(tables)
    answerer = Answerer(index=index)
    checked = 0
    for table in tables[:2]:  # gsm8k and mt_bench: the tables with answer texts
        for i, prompt in enumerate(table.prompts):
            for j, model in enumerate(table.models):
                answer = answerer.answer(normalise(prompt), model)
                assert answer.dataset == table.name
                assert answer.prompt_id == table.ids[i]
                assert answer.text == table.responses[i][model]
                assert answer.score == table.scores[i, j]
                checked += 1
    assert checked == 2 * (1307 + 72)


def test_llmrouter_scores_are_served_for_each_of_its_models(
    benchmark_tables: dict[str, RoutingDataset],
) -> None:
    tables = list(benchmark_tables.values())
    answerer = Answerer(index=PromptIndex.build(tables))
    train = benchmark_tables["llmrouter-train"]
    rng = np.random.default_rng(0)
    for i in rng.choice(len(train), size=50, replace=False):
        for j, model in enumerate(train.models):
            answer = answerer.answer(normalise(train.prompts[i]), model)
            # A train prompt may sit in gsm8k (earlier), but gsm8k never recorded these models.
            assert answer.kind is AnswerKind.SCORED
            assert answer.dataset == "llmrouter-train"
            assert answer.prompt_id == train.ids[i]
            assert answer.score == train.scores[i, j]
            assert f"{train.scores[i, j]:.4f}" in answer.text


@pytest.mark.parametrize("dataset", ["gsm8k", "mt_bench"])
def test_benchmark_tables_have_texts_for_both_models(
    benchmark_tables: dict[str, RoutingDataset], dataset: str
) -> None:
    index = PromptIndex.build([benchmark_tables[dataset]])
    assert index.datasets[0].answers == 2 * len(benchmark_tables[dataset])

"""What the labeler and its CLI commands publish fits the Avro contracts; ids agree."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st
from routeiq.contracts.catalog import DEAD_LETTER, RETRAIN_REQUEST
from routeiq.contracts.retrain import retrain_request, retrain_request_id
from routeiq.contracts.serde import AvroSerde, LocalResolver
from routeiq.shards import ShardManifest
from routeiq_cli import retrain as retrain_cli
from routeiq_labeler.app import faust_dead_letter
from routeiq_labeler.errors import InvalidRecordError


def _manifest(key: str, sha: str, rows: int) -> ShardManifest:
    return ShardManifest(
        key=key,
        rows=rows,
        sha256=sha,
        size=1,
        window_start=0,
        window_end=1,
        min_event_time=rows,
        max_event_time=rows * 10,
        partition=0,
        late=False,
    )


keys = st.text(alphabet="abcdef/=-0123456789.", min_size=1, max_size=30)
shas = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
shard_sets = st.lists(st.tuples(keys, shas), max_size=8, unique_by=lambda kv: kv[0])
types = st.lists(st.sampled_from(["knn", "svm", "mlp", "mf", "bert"]), max_size=5)


@given(model=st.text(min_size=1, max_size=20), types=types, shards=shard_sets, data=st.data())
def test_the_id_does_not_depend_on_the_order_of_types_or_shards(model, types, shards, data):
    shuffled = data.draw(st.permutations(shards))
    ours = retrain_request_id(model, types, shards)
    assert ours == retrain_request_id(model, list(reversed(types)), shuffled)
    assert retrain_cli.retrain_contract.retrain_request is retrain_request  # one implementation


@given(shards=shard_sets.filter(lambda s: len(s) > 0), data=st.data())
def test_a_different_shard_set_or_model_is_a_different_request(shards, data):
    base = retrain_request_id("m", [], shards)
    key, _ = data.draw(st.sampled_from(shards))
    changed = [(k, ("0" if s[0] != "0" else "1") + s[1:] if k == key else s) for k, s in shards]
    assert retrain_request_id("m", [], changed) != base
    assert retrain_request_id("m2", [], shards) != base
    assert retrain_request_id("m", [], shards[1:]) != base


def test_requests_and_dead_letters_encode_under_their_contracts() -> None:
    shards = [
        ("a.manifest.json", _manifest("a.parquet", "1" * 64, 3)),
        ("b.manifest.json", _manifest("b.parquet", "2" * 64, 4)),
    ]
    serde = AvroSerde.for_topic(RETRAIN_REQUEST, "r", resolver=LocalResolver())
    for record in (
        retrain_request(
            shards,
            model_name="m",
            router_types=["mlp"],
            reason="TIMER",
            requested_by="me",
            now_ms=5,
            params={"knn.k": "7"},
        ),
        retrain_cli.manual_request(
            shards, model_name="m", router_types=["mlp"], requested_by="me", now_ms=5
        ),
    ):
        back = serde.decode(serde.encode(record))
        assert back["request_id"] == retrain_request_id(
            "m", ["mlp"], [(k, m.sha256) for k, m in shards]
        )
        assert back["example_count"] == 7
        assert back["shard_manifests"] == ["a.manifest.json", "b.manifest.json"]
        assert int(back["window_start"].timestamp() * 1000) == 3
        assert int(back["window_end"].timestamp() * 1000) == 40
    letter = faust_dead_letter(
        _faust_message(headers=[("h", b"\xff\xfe"), ("n", None)]),
        InvalidRecordError("nope"),
        consumer="routeiq-labeler/x",
        now_ms=2000,
    )
    dl_serde = AvroSerde.for_topic(DEAD_LETTER, "d", resolver=LocalResolver())
    back = dl_serde.decode(dl_serde.encode(letter.to_record()))
    assert back["error_type"] == "InvalidRecordError"
    assert back["reason"] == "nope"
    assert back["value"] == b"\x00bad"
    assert back["source_offset"] == 9
    assert back["headers"] == {"h": "\ufffd\ufffd", "n": ""}
    assert int(back["source_timestamp"].timestamp() * 1000) == 1000  # Faust stamps seconds
    assert letter.kafka_key == b"t/2/9"


def _faust_message(*, headers: object) -> SimpleNamespace:
    """What Faust hands the agent: attributes, the timestamp in float seconds."""
    return SimpleNamespace(
        topic="t", partition=2, offset=9, timestamp=1.0, key=b"k", value=b"\x00bad", headers=headers
    )


def test_dead_letters_accept_the_header_shapes_faust_gives() -> None:
    def headers(raw: object) -> dict[str, str]:
        letter = faust_dead_letter(
            _faust_message(headers=raw), ValueError("x"), consumer="c", now_ms=0
        )
        return dict(letter.headers)

    assert headers(None) == {}
    assert headers({"a": b"1"}) == {"a": "1"}
    assert headers([("a", b"1"), ("b", "2")]) == {"a": "1", "b": "2"}

"""The on-disk spool: FIFO, bounded, survives restarts, tolerates a torn tail."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from routeiq_gateway.spool import Spool, SpoolFullError


def drain(spool: Spool, chunk: int = 3) -> list[bytes]:
    out = []
    while True:
        records = spool.read(chunk)
        if not records:
            return out
        out += [r.value for r in records]
        spool.commit(records[-1], len(records))


def test_records_come_back_in_order_and_are_gone_after_commit(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=200)  # tiny segments: exercise rollover
    values = [f"v{i}".encode() * 5 for i in range(50)]
    for v in values:
        spool.append("t", b"k", v)
    assert spool.pending == 50
    assert drain(spool) == values
    assert spool.pending == 0
    assert spool.size_bytes == 0
    assert spool.read() == []


def test_unacknowledged_records_survive_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=200)
    for i in range(20):
        spool.append("topic", f"k{i}".encode(), f"v{i}".encode())
    first = spool.read(5)
    spool.commit(first[-1], 5)
    spool.read(5)  # read but never acknowledged: must come back
    spool.close()
    again = Spool(tmp_path, segment_bytes=200)
    assert again.pending == 15
    rest = again.read(100)
    assert [r.value for r in rest] == [f"v{i}".encode() for i in range(5, 20)]
    assert (rest[0].topic, rest[0].key) == ("topic", b"k5")


def test_appends_survive_the_process_being_killed_before_any_fsync(tmp_path: Path) -> None:
    """A SIGKILL loses the process's memory, not what the kernel holds: every append is
    readable by the next process although the batch was never fsynced nor the spool closed."""
    spool = Spool(tmp_path, fsync_every=1_000, fsync_interval_s=3600)
    for i in range(3):
        spool.append("topic", b"k", f"v{i}".encode())
    survivor = Spool(tmp_path)  # the restarted gateway, the first never closed
    assert [r.value for r in survivor.read(10)] == [b"v0", b"v1", b"v2"]


def test_a_lull_after_appends_is_fsynced_by_sync_due(tmp_path: Path, monkeypatch) -> None:
    synced: list[int] = []
    monkeypatch.setattr("routeiq_gateway.spool.os.fsync", synced.append)
    spool = Spool(tmp_path, fsync_every=1_000, fsync_interval_s=0.0)
    spool.append("topic", b"k", b"v")  # fsynced at once: the interval has passed
    spool.sync_due()
    assert len(synced) == 1  # nothing new since: no second fsync
    spool.fsync_interval_s = 3600
    spool.append("topic", b"k", b"v")
    spool.sync_due()
    assert len(synced) == 1  # not due yet
    spool.fsync_interval_s = 0.0
    spool.sync_due()
    assert len(synced) == 2


def test_a_torn_tail_is_skipped_not_fatal(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for i in range(3):
        spool.append("t", b"", f"v{i}".encode())
    spool.close()
    segment = sorted(tmp_path.glob("seg-*.log"))[-1]
    with segment.open("ab") as fh:
        fh.write(b"\x00\x00\x01\x00garbage")  # a frame header promising more than is there
    again = Spool(tmp_path)
    assert [r.value for r in again.read()] == [b"v0", b"v1", b"v2"]
    assert again.corrupt == 1


def test_a_full_spool_refuses_new_records(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1024)
    appended = 0
    with pytest.raises(SpoolFullError):  # noqa: PT012 - appends until the bound refuses one
        for _ in range(100):
            spool.append("t", b"", b"x" * 100)
            appended += 1
    kept = spool.pending
    assert kept == appended
    assert 0 < kept < 100
    assert len(drain(spool)) == kept


@settings(max_examples=30, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=64), st.integers(1, 5)), max_size=60))
def test_fifo_under_any_interleaving(tmp_path_factory, ops) -> None:
    spool = Spool(tmp_path_factory.mktemp("s"), segment_bytes=128)
    written, consumed = [], []
    for op in ops:
        if isinstance(op, bytes):
            spool.append("t", b"", op)
            written.append(op)
        else:
            records = spool.read(op)
            if records:
                consumed += [r.value for r in records]
                spool.commit(records[-1], len(records))
    consumed += drain(spool)
    assert consumed == written

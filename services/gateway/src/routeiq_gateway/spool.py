"""A bounded, ordered on-disk spool for events that cannot reach Kafka right now.

Records are appended to numbered segment files (``seg-00000001.log``) as

    u32 length | u32 crc32(payload) | payload

where payload = u16 topic length, topic, u32 key length, key, value. Each append is handed to
the kernel at once (a killed process loses nothing it was answered for: ``make faults`` kills a
gateway with a full spool) and fsynced in batches (every ``fsync_interval_s`` or
``fsync_every`` records, and by ``sync_due`` when appends stop), trading a bounded window of
events at risk on power loss for not paying an fsync per request. The read position
(segment, offset) lives in ``head`` (written atomically) and only moves after Kafka has
acknowledged what was read, so a crash replays from the last acknowledged record. A torn
record at the tail (crash mid-write) fails its crc and is skipped, counted as corrupt.
"""

from __future__ import annotations

import os
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

_FRAME = struct.Struct(">II")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_SEGMENT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class SpooledRecord:
    topic: str
    key: bytes
    value: bytes
    # Where the record ends: commit this position once the record is acknowledged.
    segment: int
    end_offset: int


def _encode(topic: str, key: bytes, value: bytes) -> bytes:
    t = topic.encode()
    return b"".join((_U16.pack(len(t)), t, _U32.pack(len(key)), key, value))


def _decode(payload: bytes) -> tuple[str, bytes, bytes]:
    (tlen,) = _U16.unpack_from(payload, 0)
    topic = payload[2 : 2 + tlen].decode()
    (klen,) = _U32.unpack_from(payload, 2 + tlen)
    start = 6 + tlen
    return topic, payload[start : start + klen], payload[start + klen :]


class SpoolFullError(Exception):
    """The spool reached its size bound; the record was not written."""


# eq=False: one spool per folder and open segment, compared by identity.
@dataclass(eq=False)
class Spool:
    """Append-only FIFO of (topic, key, value) records on local disk."""

    directory: Path
    _: KW_ONLY
    max_bytes: int = 256 * 1024 * 1024
    fsync_interval_s: float = 0.05
    fsync_every: int = 256
    segment_bytes: int = _SEGMENT_BYTES

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._head = self._read_head()
        segments = self._segments()
        self._tail_seq = segments[-1] if segments else max(self._head[0], 1)
        self._fh = (self.directory / self._name(self._tail_seq)).open("ab")
        self._unsynced = 0
        self._last_sync = time.monotonic()
        self.corrupt = 0
        # Segments before the head are leftovers of a crash between head write and unlink.
        live = [s for s in segments if s >= self._head[0]]
        self._bytes = sum((self.directory / self._name(s)).stat().st_size for s in live)
        self._bytes -= self._head[1] if self._head[0] in live else 0
        self._records = self._count_pending()

    # ------------------------------------------------------------ bookkeeping

    @staticmethod
    def _name(seq: int) -> str:
        return f"seg-{seq:08d}.log"

    def _segments(self) -> list[int]:
        return sorted(
            int(p.name[4:12]) for p in self.directory.glob("seg-*.log") if p.name[4:12].isdigit()
        )

    def _read_head(self) -> tuple[int, int]:
        path = self.directory / "head"
        if not path.is_file():
            return (0, 0)
        try:
            seg, off = path.read_text().split()
            return (int(seg), int(off))
        except ValueError:
            return (0, 0)

    def _write_head(self, seg: int, off: int) -> None:
        tmp = self.directory / "head.tmp"
        tmp.write_text(f"{seg} {off}\n")
        os.replace(tmp, self.directory / "head")
        self._head = (seg, off)

    def _count_pending(self) -> int:
        return sum(1 for _ in self._iterate(limit=None, count_only=True))

    # ------------------------------------------------------------ writing

    @property
    def pending(self) -> int:
        """Records written and not yet acknowledged."""
        return self._records

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def append(self, topic: str, key: bytes, value: bytes) -> None:
        """Append one record (buffered; fsynced in batches). Raises ``SpoolFullError``."""
        payload = _encode(topic, key, value)
        frame = _FRAME.pack(len(payload), zlib.crc32(payload)) + payload
        with self._lock:
            if self._bytes + len(frame) > self.max_bytes:
                raise SpoolFullError(f"spool is full ({self._bytes} of {self.max_bytes} bytes)")
            if self._fh.tell() + len(frame) > self.segment_bytes and self._fh.tell() > 0:
                self._sync_locked()
                self._fh.close()
                self._tail_seq += 1
                self._fh = (self.directory / self._name(self._tail_seq)).open("ab")
            self._fh.write(frame)
            # To the kernel now, not at the next fsync: Python's buffer dies with the process.
            self._fh.flush()
            self._bytes += len(frame)
            self._records += 1
            self._unsynced += 1
            if (
                self._unsynced >= self.fsync_every
                or time.monotonic() - self._last_sync >= self.fsync_interval_s
            ):
                self._sync_locked()

    def sync_due(self) -> None:
        """Fsync if appends are waiting longer than ``fsync_interval_s`` (the publisher's
        thread calls this, so the last appends before a lull are not left unsynced)."""
        with self._lock:
            if self._unsynced and time.monotonic() - self._last_sync >= self.fsync_interval_s:
                self._sync_locked()

    def sync(self) -> None:
        """Flush buffered appends to disk now."""
        with self._lock:
            self._sync_locked()

    def _sync_locked(self) -> None:
        if self._unsynced:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._unsynced = 0
        self._last_sync = time.monotonic()

    # ------------------------------------------------------------ reading

    def read(self, limit: int = 500) -> list[SpooledRecord]:
        """Up to ``limit`` records from the head, in order (nothing is consumed yet)."""
        with self._lock:
            self._fh.flush()
        return list(self._iterate(limit=limit, count_only=False))

    def _iterate(self, *, limit: int | None, count_only: bool) -> Iterator[SpooledRecord]:
        seg_head, off_head = self._head
        produced = 0
        for seq in self._segments():
            if seq < seg_head:
                continue
            path = self.directory / self._name(seq)
            with path.open("rb") as fh:
                offset = off_head if seq == seg_head else 0
                fh.seek(offset)
                while limit is None or produced < limit:
                    header = fh.read(_FRAME.size)
                    if len(header) < _FRAME.size:
                        break
                    length, crc = _FRAME.unpack(header)
                    payload = fh.read(length)
                    if len(payload) < length or zlib.crc32(payload) != crc:
                        # A torn write at the tail: nothing valid follows in this segment.
                        if not count_only:
                            self.corrupt += 1
                        break
                    offset += _FRAME.size + length
                    produced += 1
                    if count_only:
                        yield SpooledRecord("", b"", b"", seq, offset)
                    else:
                        topic, key, value = _decode(payload)
                        yield SpooledRecord(topic, key, value, seq, offset)
            if limit is not None and produced >= limit:
                return

    def commit(self, record: SpooledRecord, count: int) -> None:
        """Mark everything up to and including ``record`` (``count`` records) as delivered."""
        with self._lock:
            old_seg, old_off = self._head
            self._write_head(record.segment, record.end_offset)
            # Bytes released: whole segments before this one, plus progress in this one.
            released = 0
            for seq in self._segments():
                if seq >= record.segment:
                    break
                if seq >= old_seg:
                    size = (self.directory / self._name(seq)).stat().st_size
                    released += size - (old_off if seq == old_seg else 0)
                if seq != self._tail_seq:
                    (self.directory / self._name(seq)).unlink(missing_ok=True)
            released += record.end_offset - (old_off if record.segment == old_seg else 0)
            self._bytes = max(0, self._bytes - released)
            self._records = max(0, self._records - count)
            if self._records == 0 and record.segment == self._tail_seq:
                # Fully drained: start a fresh segment so the spool does not grow forever.
                self._fh.close()
                (self.directory / self._name(record.segment)).unlink(missing_ok=True)
                self._tail_seq += 1
                self._fh = (self.directory / self._name(self._tail_seq)).open("ab")
                self._write_head(self._tail_seq, 0)
                self._bytes = 0

    def close(self) -> None:
        with self._lock:
            self._sync_locked()
            self._fh.close()

"""Reading model announcements: every replica reads the whole compacted log, acts on the
latest announcement once caught up, then on each new one as it arrives."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from routeiq.contracts.serde import AvroSerde
from routeiq.errors import RouteIQError

# One logger for model sync, as before the split: operators grep for "routeiq_gateway.sync".
log = logging.getLogger(__package__)


@dataclass(frozen=True)
class Announcement:
    """The parts of a ``ModelAnnouncement`` the gateway acts on."""

    model_name: str
    version: str
    action: str
    router_type: str
    bucket: str
    prefix: str
    manifest_sha256: str
    manifest_version_id: str | None
    signature: dict[str, str]
    announced_by: str
    reason: str | None

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> Announcement:
        b = r["bundle"]
        return cls(
            model_name=r["model_name"],
            version=r["version"],
            action=r["action"],
            router_type=r["router_type"],
            bucket=b["bucket"],
            prefix=b["prefix"].rstrip("/"),
            manifest_sha256=b["manifest_sha256"],
            manifest_version_id=b.get("manifest_version_id"),
            signature={k: str(r["signature"][k]) for k in ("algorithm", "key_id", "value")},
            announced_by=r["announced_by"],
            reason=r.get("reason"),
        )


# eq=False: one reader thread per object, compared by identity.
@dataclass(kw_only=True, eq=False)
class AnnouncementReader:
    """A background thread handing ``name``'s announcements to ``apply``.

    While replaying history only the latest announcement matters: it is applied once the
    end of the log is reached (``caught_up``), then every new one as it arrives.
    ``on_undecodable`` hears about records that cannot be decoded (they are skipped).
    """

    name: str
    consumer: Consumer
    topic: str
    serde: AvroSerde
    apply: Callable[[Announcement], object]
    on_undecodable: Callable[[Exception], None]
    caught_up: threading.Event = field(init=False, default_factory=threading.Event)
    _latest_seen: Announcement | None = field(init=False, default=None)
    _stop: threading.Event = field(init=False, repr=False, default_factory=threading.Event)
    _thread: threading.Thread | None = field(init=False, repr=False, default=None)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="model-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with contextlib.suppress(RuntimeError):  # already closed
            self.consumer.close()

    def _run(self) -> None:
        # No group offsets: every replica reads the whole compacted log from the beginning.
        self.consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        while not self._stop.is_set():
            try:
                msg = self.consumer.poll(0.5)
            except RuntimeError:
                return
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self._on_caught_up()
                else:
                    log.warning("announcement consumer: %s", err)
                continue
            try:
                announcement = Announcement.from_record(self.serde.decode(msg.value()))
            except (RouteIQError, KeyError, TypeError) as exc:
                log.error("undecodable announcement at offset %s: %s", msg.offset(), exc)
                self.on_undecodable(exc)
                continue
            if announcement.model_name != self.name:
                continue
            if self.caught_up.is_set():
                self.apply(announcement)
            else:
                self._latest_seen = announcement

    def _on_caught_up(self) -> None:
        if self.caught_up.is_set():
            return
        if self._latest_seen is not None:
            self.apply(self._latest_seen)
        self.caught_up.set()

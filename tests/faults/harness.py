"""The fault suite's instruments: bounded client load, the topic ledger and the result table.

Every row of ``make faults`` is measured the same way: clients send chat completions (and a
feedback for each) at a bounded rate while something breaks; each answered request names its
decision id, so after the row the decisions and feedback topics are read from where they
stood before it, and every id is counted. An id a client was given but the topic does not
hold is a lost event; an id the topic holds twice is a duplicate.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from routeiq.contracts.records import CONSUMER_HEADER
from routeiq.contracts.serde import AvroSerde, RegistryResolver
from routeiq.contracts.topics import DEAD_LETTERS, FEEDBACK_EVENTS, ROUTER_DECISIONS
from routeiq.kafka import make_consumer
from routeiq.settings import KafkaSettings
from routeiq_cli.stack import runner
from routeiq_cli.stack.settings import StackSettings
from routeiq_cli.stack.supervisor import Supervisor

PROMPTS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips "
    "in May. How many clips did Natalia sell altogether in April and May?",
    "What is the capital of France?",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of "
    "babysitting. How much did she earn?",
    "Write a haiku about streaming systems.",
]


@dataclass
class Row:
    """One line of the table: what was sent and what went wrong."""

    fault: str
    sent: int = 0
    failed: int = 0
    lost: int = 0
    duplicated: int = 0
    dead_letters: int = 0
    server_errors: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.failed or self.lost or self.duplicated or self.server_errors)


COLUMNS = ("fault", "sent", "failed", "lost", "duplicated", "dead letters", "5xx")


def render(rows: Iterable[Row]) -> str:
    """The table ``make faults`` prints (Markdown, so it pastes into an issue as it is)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [r.fault, r.sent, r.failed, r.lost, r.duplicated, r.dead_letters, r.server_errors]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    notes = [f"- {r.fault}: {note}" for r in rows for note in r.notes]
    return "\n".join(lines + (["", *notes] if notes else []))


@dataclass
class Stack:
    """The running local stack as the suite drives it: processes, URLs, Kafka."""

    settings: StackSettings
    supervisor: Supervisor
    kafka: KafkaSettings
    admin_key: str

    @property
    def gateway(self) -> str:
        return f"http://{self.settings.host}:{self.settings.gateway_port}"

    def url(self, component: str) -> str:
        port = getattr(self.settings, f"{component}_port")
        return f"http://{self.settings.host}:{port}"

    def pid(self, component: str) -> int:
        return int(self.supervisor.info(component)["pid"])

    def state(self, component: str) -> str:
        return self.supervisor.state(component)

    def kill(self, component: str) -> int:
        """SIGKILL the component; supervisord restarts it (``autorestart=unexpected``)."""
        pid = self.pid(component)
        os.kill(pid, signal.SIGKILL)
        return pid

    def drained(self) -> bool:
        """The gateway's producer is up and its spool is empty."""
        kafka = httpx.get(f"{self.gateway}/health/ready", timeout=10).json()["kafka"]
        return bool(kafka["producer_state"] == "up" and kafka["spool_depth"] == 0)

    def wait_drained(self, timeout_s: float = 180) -> None:
        wait_for(self.drained, timeout_s=timeout_s, what="the gateway's spool to drain")

    def wait_healthy(self, components: Iterable[str], timeout_s: float = 180) -> None:
        names = list(components)
        deadline = time.monotonic() + timeout_s
        while True:
            problems = {n: p for n, p in runner.health(self.settings).items() if n in names and p}
            if not problems:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"not healthy after {timeout_s:.0f}s: {problems}")
            time.sleep(1)


@dataclass
class Load:
    """Clients posting chat completions and feedback at a bounded rate, from threads."""

    gateway: str
    clients: int = 3
    pause_s: float = 0.05
    decisions: list[str] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    server_errors: int = 0
    sent: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for n in range(self.clients):
            thread = threading.Thread(target=self._client, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def _client(self, n: int) -> None:
        with httpx.Client(base_url=self.gateway, timeout=60) as client:
            i = 0
            while not self._stop.is_set():
                self._one(client, f"{PROMPTS[(n + i) % len(PROMPTS)]} ({n}.{i})")
                i += 1
                self._stop.wait(self.pause_s)

    def _one(self, client: httpx.Client, prompt: str) -> None:
        body = {"model": "auto", "messages": [{"role": "user", "content": prompt}]}
        decision = self._post(client, "/v1/chat/completions", body, 200)
        if decision is None:
            return
        decision_id = decision.headers["x-routeiq-decision-id"]
        with self._lock:
            self.decisions.append(decision_id)
        feedback = {"decision_id": decision_id, "score": 1.0, "source": "faults"}
        if self._post(client, "/v1/feedback", feedback, 202) is not None:
            with self._lock:
                self.feedback.append(decision_id)

    def _post(
        self, client: httpx.Client, path: str, body: dict[str, Any], expected: int
    ) -> httpx.Response | None:
        with self._lock:
            self.sent += 1
        try:
            response = client.post(path, json=body)
        except httpx.HTTPError as exc:
            with self._lock:
                self.failures.append(f"{path}: {exc!r}")
            return None
        if response.status_code != expected:
            with self._lock:
                self.server_errors += response.status_code >= 500
                self.failures.append(f"{path}: {response.status_code} {response.text[:200]}")
            return None
        return response


class Ledger:
    """Where topics stood before a row, and what they hold after it."""

    def __init__(self, kafka: KafkaSettings, topics: Iterable[str]) -> None:
        self.kafka = kafka
        self.starts: dict[str, list[TopicPartition]] = {}
        reader = self._reader()
        try:
            for topic in topics:
                partitions = reader.list_topics(topic, timeout=30).topics[topic].partitions
                self.starts[topic] = [
                    TopicPartition(
                        topic,
                        p,
                        reader.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1],
                    )
                    for p in partitions
                ]
        finally:
            reader.close()

    def _reader(self) -> Consumer:
        return make_consumer(
            self.kafka, group_id=f"faults-{uuid.uuid4().hex[:8]}", client_id="faults"
        )

    def read(self, topic: str, timeout_s: float = 60) -> list[Any]:
        """Every message written to ``topic`` since the ledger was opened (read committed)."""
        reader = self._reader()
        try:
            ends = {
                tp.partition: reader.get_watermark_offsets(tp, timeout=30)[1]
                for tp in self.starts[topic]
            }
            todo = {tp.partition for tp in self.starts[topic] if tp.offset < ends[tp.partition]}
            reader.assign([tp for tp in self.starts[topic] if tp.partition in todo])
            messages: list[Any] = []
            deadline = time.monotonic() + timeout_s
            while todo and time.monotonic() < deadline:
                message = reader.poll(0.5)
                if message is None:
                    for tp in reader.position([TopicPartition(topic, p) for p in todo]):
                        if tp.offset >= ends[tp.partition]:
                            todo.discard(tp.partition)
                    continue
                if message.error() is not None:
                    continue
                messages.append(message)
                if message.offset() + 1 >= ends[message.partition()]:
                    todo.discard(message.partition())
            if todo:
                raise AssertionError(f"{topic}: could not read to the end of {sorted(todo)}")
            return messages
        finally:
            reader.close()

    def keys(self, topic: str) -> Counter[str]:
        return Counter(m.key().decode() for m in self.read(topic) if m.key() is not None)

    def dead_letters(self, topic: str) -> Counter[tuple[str, str]]:
        """(consumer, source position) → how many dead letters say so."""
        out: Counter[tuple[str, str]] = Counter()
        for m in self.read(topic):
            consumer = dict(m.headers() or ()).get(CONSUMER_HEADER, b"?").decode()
            out[(consumer, (m.key() or b"").decode())] += 1
        return out

    def dead_letter_errors(self, registry: str) -> Counter[str]:
        """The dead letters' error types (decoded through ``registry``), by how many."""
        serde = AvroSerde.for_topic(
            DEAD_LETTERS.contract,
            DEAD_LETTERS.name,
            resolver=RegistryResolver(SchemaRegistryClient({"url": registry})),
        )
        return Counter(serde.decode(m.value())["error_type"] for m in self.read(DEAD_LETTERS.name))


# What a dead letter written because a dependency was down would carry: an outage is never
# a record's fault, so no row may show one.
OUTAGE_ERRORS = frozenset({"TransportError", "RegistryError", "StorageError", "TrackingError"})


def count_events(row: Row, expected: Iterable[str], seen: Counter[str], what: str) -> None:
    """Each expected id once in ``seen``: the missing are lost, the repeated duplicated."""
    wanted = Counter(expected)
    lost = sum(1 for key in wanted if seen[key] == 0)
    duplicated = sum(seen[key] - 1 for key in wanted if seen[key] > 1)
    row.lost += lost
    row.duplicated += duplicated
    if lost or duplicated:
        row.notes.append(f"{what}: {lost} lost, {duplicated} duplicated of {len(wanted)}")


def wait_for(check: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.5)


def kills(*components: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Marks a test that kills watched consumers on purpose (their restart is not a fault)."""

    def mark(test: Callable[..., Any]) -> Callable[..., Any]:
        test.kills = components  # type: ignore[attr-defined]
        return test

    return mark


TOPICS = (ROUTER_DECISIONS.name, FEEDBACK_EVENTS.name, DEAD_LETTERS.name)


def tally(row: Row, load: Load, ledger: Ledger) -> None:
    """What the clients sent and were answered, against what the topics hold."""
    row.sent, row.server_errors = load.sent, load.server_errors
    row.failed += len(load.failures)
    row.notes.extend(load.failures[:3])
    count_events(row, load.decisions, ledger.keys(ROUTER_DECISIONS.name), "decisions")
    count_events(row, load.feedback, ledger.keys(FEEDBACK_EVENTS.name), "feedback")


def under_load(stack: Stack, row: Row, outage: Callable[[], None]) -> None:
    """Run ``outage()`` while clients send traffic, then count every event."""
    ledger = Ledger(stack.kafka, TOPICS)
    with Load(stack.gateway) as load:
        time.sleep(3)
        outage()
        time.sleep(3)
    stack.wait_drained()
    tally(row, load, ledger)
    errors = ledger.dead_letter_errors(stack.settings.registry.url)
    row.dead_letters = sum(errors.values())
    if errors:
        row.notes.append(f"dead letters by error: {dict(errors)}")
    outage_letters = sum(n for error, n in errors.items() if error in OUTAGE_ERRORS)
    if outage_letters:
        # A request given up for an outage is a request lost to it.
        row.lost += outage_letters

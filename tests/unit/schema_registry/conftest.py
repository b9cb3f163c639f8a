"""Registry unit tests: the core over an in-memory log, the API through Starlette's TestClient."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator

import pytest
from routeiq_schema_registry.api import create_app
from routeiq_schema_registry.core import InMemorySchemaLog, SchemaRegistry
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 in its test client; httpx (what we have) still works.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient


@pytest.fixture
def log() -> InMemorySchemaLog:
    return InMemorySchemaLog()


@pytest.fixture
def registry(log: InMemorySchemaLog) -> SchemaRegistry:
    registry = SchemaRegistry(log=log)
    registry.start(timeout_s=5)
    return registry


@pytest.fixture
def client_for() -> Callable[[SchemaRegistry], TestClient]:
    """``client_for(registry)``: a TestClient over any registry (use it as a context)."""
    return lambda registry: TestClient(create_app(registry))


@pytest.fixture
def client(
    registry: SchemaRegistry, client_for: Callable[[SchemaRegistry], TestClient]
) -> Iterator[TestClient]:
    with client_for(registry) as client:
        yield client

"""End-to-end tier: whole services as processes against the real stack.

The stack and factory fixtures are the integration tier's; the gateway and trainer fixtures
too, with the trainer signing with the private half of the key the gateways verify with.
"""

import pytest
from integration.conftest import (  # noqa: F401 - fixtures, found by name
    admin,
    registry_client,
    stack,
    topic_factory,
    unique,
)
from integration.gateway.conftest import (  # noqa: F401 - fixtures, found by name
    gateway_factory,
    signing_keys,
    upstream,
)
from integration.trainer.conftest import (  # noqa: F401 - fixtures, found by name
    gsm8k,
    gsm8k_shards,
    harness_factory,
    minio_client,
    models_bucket,
    private_bucket,
    trainer_cache,
)


@pytest.fixture
def signing_key(signing_keys: tuple[str, str]) -> str:  # noqa: F811 - the fixture imported above
    """The trainer signs with the private half of the key the gateways verify with."""
    return signing_keys[0]

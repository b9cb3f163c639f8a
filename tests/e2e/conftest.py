"""End-to-end tier: whole services as processes against the real stack.

The stack and factory fixtures are the integration tier's; the gateway fixtures too.
"""

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

"""The analytics service's errors, all under ``routeiq.errors.RouteIQError``.

HTTP status codes for them live in one table, ``HTTP_STATUS``; the API only looks them up.
"""

from __future__ import annotations

from typing import Final

from routeiq.errors import ContractError, RouteIQError


class AnalyticsError(RouteIQError):
    """Base of the analytics service's own errors."""


class InvalidRecordError(ContractError):
    """A record decoded but breaks a rule the aggregates rely on (a score outside [0, 1],
    negative token counts, a non-finite timing). Dead-lettered with this message as reason."""


class InvalidQueryError(AnalyticsError):
    """An API query parameter is malformed or out of range (unknown window, too many points)."""


class ConsumerStoppedError(AnalyticsError):
    """The consumer loop was asked to stop while it waited on a transient failure."""


HTTP_STATUS: Final[dict[type[BaseException], int]] = {
    InvalidQueryError: 400,
    RouteIQError: 500,
}


def http_status(exc: BaseException) -> int:
    """HTTP status for ``exc``: its class's entry, else its nearest listed base's, else 500."""
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500

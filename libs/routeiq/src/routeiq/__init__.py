"""RouteIQ shared library: contracts, serde, topic specs, settings and infrastructure clients.

Only code that more than one service needs lives here; services never import each other.
"""

__version__ = "0.1.0"

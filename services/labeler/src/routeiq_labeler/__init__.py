"""RouteIQ labeler: Faust stream processor turning decisions and feedback into training shards."""

__version__ = "0.1.0"

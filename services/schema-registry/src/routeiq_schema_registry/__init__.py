"""RouteIQ's schema registry: Confluent's REST API (Avro), state in a compacted Kafka topic.

``python -m routeiq_schema_registry`` runs it; see ``__main__`` for the wiring, ``core`` for the
registry itself (no I/O), ``kafka_log`` for its log in Kafka and ``api`` for the HTTP layer.
"""

__version__ = "0.1.0"

"""The labeler's pure logic, free of Faust and of I/O: record rules, windows, labels, the state
machine over its tables, and when to ask for retraining. ``sink`` (S3), ``retraining``
(Kafka, S3), ``app`` and ``worker`` (Faust) do the I/O around it."""

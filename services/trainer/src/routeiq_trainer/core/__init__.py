"""The trainer's pure logic, no I/O: requests and their options, the time split, the gate,
what a trained request records (results) and the MLflow tag names. The I/O around it lives
one level up: ``data`` (shards, datasets), ``pipeline`` (the steps), ``tracking`` (MLflow),
``bundles`` (S3), ``announce`` (Kafka), ``ops`` (promote, roll back), ``worker`` (consumer)."""

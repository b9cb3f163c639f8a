"""The labeler's logic, free of Faust and of I/O except ``ShardSink`` (S3)."""

"""Analytics logic with no I/O: record rules, time buckets, the join, windows and savings."""

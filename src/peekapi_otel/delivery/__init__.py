"""From request records to acknowledged events: batching, sending, retry, spool, lifecycle."""

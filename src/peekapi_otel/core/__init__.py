"""Pure span-to-event mapping, encoding, counters and the host-thread guard: no I/O."""

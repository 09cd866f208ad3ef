"""Event store backends besides the embedded SQLite one: PostgreSQL for a fleet of ``serve``
processes writing one database (``serve --db postgresql://...``)."""

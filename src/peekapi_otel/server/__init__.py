"""The self-hosted PeekAPI: ingest, store, dashboard, report and the command line."""

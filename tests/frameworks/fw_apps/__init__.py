"""Small real apps, one per framework, with the same endpoints (see ``common.py``)."""

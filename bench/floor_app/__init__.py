"""The floor bench/api.py measures API v2 against: a standalone Django app (its own settings,
no middleware) doing the least database work `add` and `status` could do on the same tables."""

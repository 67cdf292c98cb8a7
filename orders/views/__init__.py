"""The orders app's pages: ordering.py (new order, mass order), history.py (orders and the rest)."""

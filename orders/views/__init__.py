"""The orders app's pages."""

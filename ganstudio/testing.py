"""Conformance kit for plugin authors (in progress)."""

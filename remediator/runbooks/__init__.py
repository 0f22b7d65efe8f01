"""Runbooks: loading, matching, rendering and hot reload."""

"""Faces for analysts: the read-only HTTP API, the analyst queries and their commands."""

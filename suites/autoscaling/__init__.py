"""Acceptance checks."""

"""Test doubles that stand in for a real daemon in unit tests (never in the end-to-end suite)."""

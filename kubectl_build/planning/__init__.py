"""Decisions, from data alone: the per-platform plan, builder groups, solve assembly. Pure."""

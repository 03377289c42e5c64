"""Dockerfile parsing and the stage/platform analysis the planner needs. Pure."""

"""Flags parsed and validated into frozen dataclasses (BuildOptions and its specs). Pure."""

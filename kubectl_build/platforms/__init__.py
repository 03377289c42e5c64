"""The target platform type, its parsing, and matching against workers and nodes. Pure."""

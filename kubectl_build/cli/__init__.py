"""The command line: click commands for kubectl build and kubectl buildkit, completion, version."""

"""The registry side: OCI distribution client, index merge, docker credentials."""

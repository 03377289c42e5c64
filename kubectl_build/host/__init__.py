"""The client's operating system: what it offers, asked in one place (Linux, macOS, Windows)."""

"""The BuildKit session: services our client serves to the daemon."""

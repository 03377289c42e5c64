"""BuildKit client: the Control API, the session, and SolveRequest assembly."""

"""kubectl-build: build container images inside Kubernetes with BuildKit."""

__version__ = "0.1.0"

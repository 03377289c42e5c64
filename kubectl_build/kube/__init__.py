"""Kubernetes access: kubeconfig, builders, and the transport to buildkitd in a pod."""

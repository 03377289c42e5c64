"""The local agent: a resident, pre-imported process that runs `kubectl build` for the CLI.

On a ready builder a build is over in a fraction of a second, and most of that went to
starting Python, importing grpc, protobuf and h2, and starting `kubectl exec`. After a
successful build (cluster or standing buildkitd) the CLI leaves an agent behind (one per
user and installation, gone after ten idle minutes, `KUBECTL_BUILD_AGENT=0` to never
start one). The next
`kubectl build` hands it its arguments, environment, working directory and standard
streams; the agent forks a copy of itself, already imported, with an exec into the
builder pod already connected, and that copy runs the build exactly as the CLI would,
writing straight to the caller's terminal. The caller forwards Ctrl-C and exits with the
copy's exit code. Anything unusual (no agent, a different installation, changed code)
and the CLI simply runs the build itself.
"""

"""``kubectl build --help``, pre-rendered: a bare --help is answered without click."""

# `kubectl build --help` as click renders it (fixed 80 columns, see cli.CONTEXT_SETTINGS).
# Answering a bare --help from this copy skips importing click, which alone costs
# several times a bare interpreter start. tests/unit/cli/test_commands.py fails when it drifts;
# regenerate with: python scripts/gen_build_help.py
BUILD_HELP = """Usage: kubectl build [OPTIONS] PATH | URL | -

  Build a container image from PATH, URL or - (stdin) with BuildKit.

  By default the build runs on a BuildKit builder in the current Kubernetes
  cluster; --buildkit-host builds on a standing buildkitd instead.

Options:
  -f, --file PATH                 Dockerfile (default: PATH/Dockerfile; - reads
                                  stdin).
  -t, --tag NAME[:TAG]            Image name and tag; repeatable.
  --platform OS/ARCH[/VARIANT]    Target platforms, comma list or repeated;
                                  'local' is this machine [env
                                  DOCKER_DEFAULT_PLATFORM].
  --build-arg KEY[=VALUE]         Build-time variable; a bare KEY takes the
                                  environment's value.
  --label KEY=VALUE               Image label; repeatable.
  --annotation [TYPE[PLATFORM]:]KEY=VALUE
                                  OCI annotation; TYPE manifest (default),
                                  index, manifest-descriptor or index-
                                  descriptor.
  --target STAGE                  Build this stage instead of the last one.
  --no-cache                      Do not use the build cache.
  --no-cache-filter STAGE         Do not use the build cache for these stages.
  --pull                          Always check for newer base images.
  --secret id=ID[,src=FILE|env=VAR]
                                  Secret for RUN --mount=type=secret.
  --ssh default|ID[=SOCKET|KEY,...]
                                  SSH agent or keys for RUN --mount=type=ssh.
  --build-context NAME=VALUE      Extra named context: a directory, docker-
                                  image://REF, oci-layout://DIR[:TAG][@DIGEST]
                                  or a URL.
  --attest type=sbom|provenance,...
                                  Attestation to add to the image.
  --sbom true|false|KEY=VALUE     SBOM attestation (shorthand for --attest
                                  type=sbom).
  --provenance true|false|mode=min|max
                                  Provenance attestation [default: mode=min
                                  where the image is exported].
  --cache-from REF|type=...       Cache source, e.g. type=registry,ref=REF.
  --cache-to type=...             Cache destination, e.g.
                                  type=registry,ref=REF,mode=max or type=inline.
  -o, --output type=...|DIR       Output: type=local|tar|oci|docker,dest=PATH (-
                                  is stdout), type=image,name=NAME[,push=true],
                                  type=registry, or a directory.
  --push                          Push the image to its registry (shorthand for
                                  --output type=registry).
  --load                          Make the image available to the cluster's
                                  nodes.
  --network default|host|none     Network mode for RUN steps.
  --add-host HOST:IP              Add an /etc/hosts entry for RUN steps.
  --shm-size SIZE                 Size of /dev/shm for RUN steps, e.g. 64m.
  --ulimit NAME=SOFT[:HARD]       Resource limit for RUN steps, e.g.
                                  nofile=1024.
  --allow ENTITLEMENT             Allow network.host or security.insecure.
  --call check|outline|targets[,format=json]
                                  Ask the Dockerfile frontend instead of
                                  building: lint findings, build arguments and
                                  secrets, or targets.
  --check                         Lint the Dockerfile, build nothing (--call
                                  check).
  --progress auto|tty|plain|quiet|rawjson|none
                                  Progress output [env BUILDKIT_PROGRESS;
                                  default auto].
  -q, --quiet                     No progress; print only the image digest.
  --iidfile FILE                  Write the image digest to FILE.
  --metadata-file FILE            Write build result metadata to FILE as JSON.
  --debug                         Show debug output and tracebacks.
  --buildkit-host ADDR            Use the buildkitd at unix://PATH or
                                  tcp://HOST:PORT instead of the cluster [env
                                  BUILDKIT_HOST].
  --tlscacert FILE                CA certificate for a tcp:// buildkitd.
  --tlscert FILE                  Client certificate for a tcp:// buildkitd.
  --tlskey FILE                   Client key for a tcp:// buildkitd.
  --tlsservername NAME            Server name to verify for a tcp:// buildkitd.
  --builder NAME                  Builder name [env BUILDKIT_BUILDER,
                                  BUILDX_BUILDER; default buildkit].
  --registry-secret NAME          Kubernetes Secret with registry credentials
                                  (default: the builder's name).
  -n, --namespace NAME            Kubernetes namespace of the builder.
  --mode [auto|native|cross|qemu]
                                  How foreign platforms are built: native nodes,
                                  cross-compilation or QEMU [env
                                  KUBECTL_BUILD_MODE; default auto: the fastest
                                  that works].
  --qemu-image IMAGE              Image that installs QEMU emulators on a node
                                  when a platform needs them [default
                                  docker.io/tonistiigi/binfmt:latest].
  --transport [kubectl|websocket]
                                  Exec bridge to the builder pod [env
                                  KUBECTL_BUILD_TRANSPORT; default kubectl].
  --kubeconfig FILE               Kubeconfig file.
  --context NAME                  Kubeconfig context.
  --version                       Show the version and exit.
  -h, --help                      Show this message and exit."""

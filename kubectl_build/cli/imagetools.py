"""``kubectl buildkit imagetools create|inspect``: buildx's imagetools on our registry code.

The commands take ``kubectl buildkit``'s context settings (-h, fixed widths) from their parent.

Credentials come from the docker config (``$DOCKER_CONFIG/config.json``, credential helpers
included), a registry's CA from ``certs.d`` as for builds.
"""

from __future__ import annotations

from typing import Any

import click

from kubectl_build.console import Console


def _connect() -> Any:
    from kubectl_build.registry.client import RegistryClient
    from kubectl_build.registry.credentials import docker_config_store
    from kubectl_build.registry.merge import is_loopback, registry_ca, speaks_tls

    store = docker_config_store()

    def connect(host: str) -> RegistryClient:
        # a registry on this machine often speaks plain HTTP (docker allows it for loopback)
        plain = is_loopback(host) and not speaks_tls(host)
        return RegistryClient(host, store.lookup(host), ca_file=registry_ca(host), plain_http=plain)
    return connect


@click.group(name="imagetools")
def imagetools() -> None:
    """Inspect images in a registry, and merge images into a new index."""


@imagetools.command(name="inspect")
@click.argument("name", metavar="NAME[:TAG|@DIGEST]")
@click.option("--raw", is_flag=True, help="Print the manifest or index exactly as stored.")
@click.option("--format", "template", metavar="TEMPLATE",
              help="Go-template-like output: {{.Name}}, {{json .Manifest}}, {{json .Image}}.")
def inspect_command(name: str, raw: bool, template: str | None) -> int:
    """Show an image or index: its media type, digest, platforms and attestations."""
    from kubectl_build.errors import UsageError
    from kubectl_build.registry import imagetools as tools

    if raw and template:
        raise UsageError("--raw and --format cannot be combined", "use one of them")
    if template:
        tools.check_template(template)
    found = tools.inspect(_connect(), name)
    console = Console()
    if raw:
        console.result(found.manifest.body.decode())
    else:
        console.result(tools.render_template(found, template) if template else tools.render_text(found))
    return 0


@imagetools.command(name="create")
@click.argument("sources", nargs=-1, metavar="SOURCE...")
@click.option("-t", "--tag", "tags", multiple=True, metavar="NAME:TAG",
              help="Name of the new index; repeatable.")
@click.option("--append", is_flag=True, help="Add the sources to the index already under the first tag.")
@click.option("--annotation", "annotations", multiple=True, metavar="[index:|manifest-descriptor:]KEY=VALUE",
              help="Annotation of the index or of its entries.")
@click.option("--dry-run", is_flag=True, help="Print the index instead of pushing it.")
def create_command(sources: tuple[str, ...], tags: tuple[str, ...], append: bool,
                   annotations: tuple[str, ...], dry_run: bool) -> int:
    """Merge images or indexes (same registry) into one index under every tag."""
    from kubectl_build.errors import UsageError
    from kubectl_build.options.annotations import for_index, parse_annotations
    from kubectl_build.registry import imagetools as tools

    parsed = parse_annotations(annotations)
    if any(a.type not in ("", "index", "manifest-descriptor") for a in parsed):
        raise UsageError("imagetools create sets index and manifest-descriptor annotations only",
                         "use index:KEY=VALUE or manifest-descriptor:KEY=VALUE")
    # a bare KEY=VALUE names the index here (the only manifest imagetools writes)
    indexed = tuple(a if a.type else type(a)("index", None, a.key, a.value) for a in parsed)
    merged = tools.create(_connect(), sources, tags, append=append, annotations=for_index(indexed),
                          dry_run=dry_run)
    Console().result(merged.body.decode() if dry_run else merged.digest)
    return 0

"""Emulators a job's RUN steps need: installed on its builder's node, then awaited."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from kubectl_build.buildkit.client import BuildKitClient
from kubectl_build.console import Console
from kubectl_build.errors import BuilderError
from kubectl_build.planning.groups import BuilderGroup

if TYPE_CHECKING:
    from kubectl_build.kube.builder import Builder
    from kubectl_build.run.cluster import ClusterTarget

EMULATOR_PROBE_WAIT = 25.0
"""Seconds to wait for a builder to report newly installed emulators: BuildKit caches its
emulator probe for 20 s."""
EMULATOR_POLL = 1.0


def ensure_group_emulators(group: BuilderGroup, builder: Builder | None, client: BuildKitClient,
                           qemu_image: str, target: ClusterTarget | None, console: Console) -> None:
    """Install the emulators a group's RUN steps need, then check the builder reports them."""
    missing = ", ".join(str(p) for p in group.emulated)
    if target is None or target.kube is None:
        console.info(f"warning: builder {group.builder} reports no emulator for {missing}; "
                     "RUN steps for it will fail unless binfmt emulation is installed on its host")
        return
    from kubectl_build.kube.builder import find_builder
    from kubectl_build.kube.emulation import ensure_emulators

    kube = target.kube.get()
    found = builder or find_builder(kube, group.builder)
    if found is None:
        raise BuilderError(f"builder {group.builder} disappeared while planning",
                           "run the build again")
    ensure_emulators(kube, found, group.emulated, qemu_image, console)
    still = await_emulators(group, client, console)
    if still:
        raise BuilderError(f"builder {group.builder} still cannot run {', '.join(still)} after "
                           f"installing emulators with {qemu_image}",
                           "check that the cluster allows privileged pods, or pass --qemu-image")


def await_emulators(group: BuilderGroup, client: BuildKitClient, console: Console) -> list[str]:
    """Ask the builder (bounded) until it reports every emulated platform; those it does not."""
    from kubectl_build.platforms.matching import worker_platforms

    installed = time.monotonic()
    while True:
        # BuildKit probes emulators again at most every 20 s (archutil.CacheMaxAge), and
        # the last probe was the planner's ListWorkers, seconds ago: ask until it did.
        workers = client.list_workers()
        reported = worker_platforms(workers[0].platforms if workers else ())
        still = [str(p) for p in group.emulated if p not in reported]
        waited = time.monotonic() - installed
        if not still or waited >= EMULATOR_PROBE_WAIT:
            break
        if waited < EMULATOR_POLL:
            console.info(f"waiting for builder {group.builder} to see the new emulators "
                         "(BuildKit looks again every 20 s)")
        time.sleep(EMULATOR_POLL)
    console.trace(f"builder {group.builder} reports {', '.join(str(p) for p in reported)} "
                  f"{waited:.1f}s after installing emulators")
    return still



"""Report a finished build: digest on stdout, --iidfile, --metadata-file."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

from kubectl_build.console import Console
from kubectl_build.errors import OutputError
from kubectl_build.options.build import BuildOptions
from kubectl_build.planning.solve import PreparedSolve


def metadata(response: Mapping[str, str]) -> dict[str, Any]:
    """The exporter response as JSON-friendly metadata (descriptor decoded)."""
    meta: dict[str, Any] = {}
    for key, value in sorted(response.items()):
        if key == "containerimage.descriptor":
            try:
                meta[key] = json.loads(base64.b64decode(value))
                continue
            except ValueError:
                pass
        meta[key] = value
    return meta


def image_id(response: Mapping[str, str]) -> str | None:
    """What --iidfile gets: the config digest, or the index digest when multi-platform."""
    return response.get("containerimage.config.digest") or response.get("containerimage.digest")


def _write(path: str, text: str, flag: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as err:
        raise OutputError(f"cannot write {flag} {path}: {err.strerror}",
                          "check that the directory exists and is writable") from err


def report(response: Mapping[str, str], plan: PreparedSolve, options: BuildOptions,
           console: Console) -> None:
    """Print and write the results of a successful build."""
    digest = response.get("containerimage.digest")
    if options.iidfile and (iid := image_id(response)):
        _write(options.iidfile, iid, "--iidfile")
    if options.metadata_file:
        _write(options.metadata_file, json.dumps(metadata(response), indent=2) + "\n",
               "--metadata-file")
    if digest:
        for name in plan.image_names:
            console.info(f"image {name}@{digest}")
        console.result(digest)


def report_groups(responses: Sequence[tuple[str, Mapping[str, str]]], options: BuildOptions,
                  console: Console) -> None:
    """Results of several builders that each loaded their own nodes' variant.

    No single image digest exists (each node holds the image of its architecture), so
    stdout and --iidfile stay empty; --metadata-file lists every builder's result.
    """
    for label, response in responses:
        if digest := response.get("containerimage.digest"):
            console.info(f"{label}: image {digest}")
    if options.metadata_file:
        builders = {label: metadata(response) for label, response in responses}
        _write(options.metadata_file, json.dumps({"builders": builders}, indent=2) + "\n",
               "--metadata-file")
    if options.iidfile:
        console.info(f"--iidfile {options.iidfile} not written: each builder loaded the image of "
                     "its own architecture, so there is no single image ID")

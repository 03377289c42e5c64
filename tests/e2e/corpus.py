"""Real-world ``docker buildx build`` command lines, made runnable here, and what they ask.

A line from a CI file names shell variables, files of its project and registries we
cannot reach. ``prepare`` turns it into arguments that run in a scratch directory: each
``$VAR``/``${{ expr }}`` becomes a fixed word, the context, Dockerfiles and secret files
it names are created, ``--ssh default`` gets a key. Registries stay as written: in
record-only mode the recording proxy refuses the solve once it has read it.

``asked`` reduces a recorded solve to what the command line decided (frontend
attributes, exporters, caches, entitlements), dropping what differs between any two runs
(session ids, the random names of local directories).
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.recorder import Recording

CORPUS = Path(__file__).resolve().parent / "golden" / "buildx_corpus.tsv"
_EXPR = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_VAR = re.compile(rf"\$(?:\{{({_NAME})(?::-[^}}]*)?\}}|\(({_NAME})\)|({_NAME}))")
# Values that keep a line meaningful where a plain word would not (platform lists, types).
_DEFAULTS = {"arch": "amd64", "os": "linux", "outputtype": "registry", "pwd": ".", "home": "home",
             "platform": "linux/amd64", "localarch": "linux/amd64", "dockerimageplatform": "linux/amd64",
             "platforms": "linux/amd64,linux/arm64", "buildplatforms": "linux/amd64,linux/arm64",
             "linuxplatforms": "linux/amd64,linux/arm64", "buildxplatforms": "linux/amd64,linux/arm64",
             "docker": "docker", "envdocker": "docker", "osname": "linux"}
_VALUE_FLAGS = {"-t", "--tag", "-f", "--file", "--target", "--build-arg", "--label", "-o", "--output",
                "--cache-from", "--cache-to", "--secret", "--ssh", "--platform", "--provenance", "--sbom",
                "--attest", "--annotation", "--build-context", "--iidfile", "--metadata-file",
                "--progress", "--network", "--add-host", "--shm-size", "--ulimit", "--allow", "--call",
                "--builder", "--no-cache-filter"}
# Attributes that name this run rather than the command line.
_VOLATILE = re.compile(r"^(local-sessionid|contextkey|vcs:.*)$")


@dataclass(frozen=True)
class Entry:
    """One corpus line: where it came from, and the command."""

    origin: str
    command: str
    build: bool
    """Built end to end on the test bed too (tags moved to its registry)."""
    known: bool = False
    """Differs from buildx today: the test expects the difference (strict xfail)."""
    refused: bool = False
    """Both tools refuse the line before asking the daemon anything."""


def entries() -> list[Entry]:
    """The corpus, in file order (``#`` lines are comments)."""
    found = []
    for line in CORPUS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        origin, flag, command = line.split("\t")
        found.append(Entry(origin, command, flag == "build", flag == "known", flag == "refused"))
    return found


def command_line(command: str) -> tuple[dict[str, str], list[str]]:
    """The environment a line sets before ``docker buildx build``, and its arguments."""
    text = _EXPR.sub(lambda m: _word(m[1].split(".")[-1]), command)
    text = _VAR.sub(lambda m: _word(next(g for g in m.groups() if g)), text)
    # Documentation writes TAG for "your image name"; uppercase is no valid reference.
    words = ["tag" if word == "TAG" else word for word in shlex.split(text)]
    env = {}
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    if words[:1] == ["time"]:
        words.pop(0)
    if words[:3] == ["docker", "buildx", "build"]:
        return env, words[3:]
    raise ValueError(f"not a buildx build command: {command}")


def _word(name: str) -> str:
    plain = re.sub(r"[^a-z0-9]+", "", name.lower()) or "x"
    if plain.endswith(("flags", "extraargs")):
        return ""  # a list of extra options, empty unless a caller sets it
    return _DEFAULTS.get(plain, plain)


def prepare(entry: Entry, work: Path, registry: str | None = None) -> list[str]:
    """The entry's arguments, with every file they name created under ``work``.

    ``registry``: move every tag and cache ref there (for a real build).
    """
    _, args = command_line(entry.command)
    context, dockerfiles, sources = _scan(args)
    (work / context).mkdir(parents=True, exist_ok=True)
    (work / context / "file.txt").write_text("corpus\n")
    stages = "".join(f"FROM scratch AS {t}\nCOPY file.txt /\n" for t in _targets(args))
    for name in dockerfiles or [str(Path(context) / "Dockerfile")]:
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(stages + "FROM scratch\nCOPY file.txt /\n")
    for name in sources:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text("s3cr3t\n")
    if not registry:
        return args
    return [_moved(arg, registry) if _names_image(args[i - 1] if i else "", arg) else arg
            for i, arg in enumerate(args)]


def _names_image(previous: str, arg: str) -> bool:
    """Whether ``arg`` holds an image or cache reference (a tag, ``ref=``, ``name=``)."""
    if previous in ("-t", "--tag") or (previous == "--cache-from" and "=" not in arg):
        return True
    flag, eq, value = arg.partition("=")
    if eq and flag in ("-t", "--tag"):
        return True
    text = value if eq and flag.startswith("--") else arg
    return any(part.startswith(("ref=", "name=")) for part in text.split(","))


def _targets(args: list[str]) -> list[str]:
    found = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--target"]
    return found + [a.split("=", 1)[1] for a in args if a.startswith("--target=")]


def _scan(args: list[str]) -> tuple[str, list[str], list[str]]:
    """The context, the Dockerfiles and the secret files an argument list names."""
    context, dockerfiles, sources = ".", [], []
    i = 0
    while i < len(args):
        arg = args[i]
        flag, eq, inline = arg.partition("=")
        if flag in _VALUE_FLAGS:
            value = inline if eq else args[i + 1]
            i += 1 if eq else 2
            if flag in ("-f", "--file") and value != "-":
                dockerfiles.append(value)
            elif flag == "--build-context" and "://" not in value:
                sources.append(value.split("=", 1)[1].rstrip("/") + "/file.txt")
            elif flag == "--secret":
                sources += _secret_files(value)
            continue
        if not arg.startswith("-"):
            context = arg
        i += 1
    return context, dockerfiles, sources


def _secret_files(value: str) -> list[str]:
    """The file a --secret reads: src=, or a bare id=X read from the file X (no env var is set)."""
    fields = dict(f.split("=", 1) for f in value.split(",") if "=" in f)
    if "env" in fields or fields.get("type") == "env":
        return []
    return [fields.get("src") or fields.get("source") or fields["id"]]


def _moved(arg: str, registry: str) -> str:
    """Every ``HOST/PATH/NAME[:TAG]`` of the value moved to ``registry/corpus/NAME[:TAG]``."""
    return re.sub(r"(?<![\w.-])(?:[\w.-]+(?::\d+)?/)+([\w.-]+)(:[\w.-]+)?",
                  lambda m: f"{registry}/corpus/{m[1]}{m[2] or ''}", arg) if "/" in arg else arg


def asked(recording: Recording, workdir: Path) -> dict[str, Any]:
    """What a recorded solve asked, run-independent."""
    # A --call holds its gateway request in an internal solve (kept out of the build history).
    control = recording.control if recording.gateway else [c for c in recording.control if not c.internal]
    assert control, "no solve was recorded"
    solve = control[-1]
    attrs: Mapping[str, str] = recording.gateway[-1].frontend_opt if recording.gateway \
        else solve.frontend_attrs
    return {
        "frontend_attrs": {k: _shared(k, _local(v, workdir)) for k, v in sorted(attrs.items())
                           if not _VOLATILE.match(k)},
        "exporters": [(e.type, {k: _local(v, workdir) for k, v in sorted(e.attrs.items())})
                      for e in solve.exporters],
        "cache_exports": [(c.type, dict(sorted(c.attrs.items()))) for c in solve.cache.exports],
        "cache_imports": sorted((c.type, tuple(sorted(c.attrs.items()))) for c in solve.cache.imports),
        "entitlements": sorted(solve.entitlements),
    }


def _shared(key: str, value: str) -> str:
    """A shared key without the part naming the client (buildx's node id, our client hash)."""
    return re.sub(r":[^:]+$", ":<client>", value) if key.startswith("sharedkey:") else value


def _local(value: str, workdir: Path) -> str:
    return value.replace(str(workdir), "<work>")


def ssh_key(work: Path) -> Path:
    """A throwaway key for ``--ssh default`` (buildx needs an agent or a key to start)."""
    key = work / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key

"""Unit tests for kubectl_build.options.build: every flag parser, good and bad input."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from kubectl_build.errors import ContextError, ExitCode, UsageError
from kubectl_build.options.build import (
    DEFAULT_BUILDER,
    BuildFlags,
    BuildOptions,
    CacheSpec,
    OutputSpec,
    Platform,
    SecretSpec,
    SSHSpec,
    build_options,
    native_platform,
    parse_add_hosts,
    parse_build_args,
    parse_cache,
    parse_labels,
    parse_output,
    parse_platform,
    parse_platforms,
    parse_secret,
    parse_ssh,
)

PLATFORM_HINT = (
    "use OS/ARCH[/VARIANT] such as linux/amd64, linux/arm64, linux/arm/v7, linux/arm/v6, "
    'linux/386, linux/ppc64le, linux/s390x, windows/amd64, or "local"'
)


@pytest.fixture
def context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A build context with a Dockerfile; the current directory is its parent."""
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\n")
    monkeypatch.chdir(tmp_path)
    return ctx


def options(**flags: Any) -> BuildOptions:
    """build_options for the ``ctx`` fixture; ``environ=`` gives the environment."""
    environ = flags.pop("environ", {})
    flags.setdefault("context", "ctx")
    return build_options(BuildFlags(**flags), environ)


# --platform -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("linux/x86-64", "linux/amd64"),
        ("linux/amd64/v1", "linux/amd64"),
        ("linux/amd64/v3", "linux/amd64/v3"),
        ("linux/arm64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/arm64v8", "linux/arm64"),
        ("linux/arm64/v9", "linux/arm64/v9"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/arm/7", "linux/arm/v7"),
        ("linux/arm/v6", "linux/arm/v6"),
        ("linux/armhf", "linux/arm/v7"),
        ("linux/armv7l", "linux/arm/v7"),
        ("linux/armel", "linux/arm/v6"),
        ("linux/arm32v6", "linux/arm/v6"),
        ("linux/i386", "linux/386"),
        ("linux/i686", "linux/386"),
        ("linux/386", "linux/386"),
        ("linux/ppc64el", "linux/ppc64le"),
        ("linux/s390x", "linux/s390x"),
        ("linux/riscv64", "linux/riscv64"),
        ("LINUX/AMD64", "linux/amd64"),
        ("windows/amd64", "windows/amd64"),
        ("arm64", "linux/arm64"),
        ("aarch64", "linux/arm64"),
        (" linux/arm64 ", "linux/arm64"),
    ],
)
def test_parse_platform_normalises(value: str, expected: str) -> None:
    assert str(parse_platform(value)) == expected


def test_platform_fields_and_str() -> None:
    assert parse_platform("linux/arm/v6") == Platform("linux", "arm", "v6")
    assert str(Platform("linux", "arm64")) == "linux/arm64"


def test_local_is_the_native_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    monkeypatch.setattr(sys, "platform", "linux")
    assert parse_platform("local") == Platform("linux", "arm64")
    monkeypatch.setattr("platform.machine", lambda: "armv7l")
    assert native_platform() == Platform("linux", "arm", "v7")
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    assert parse_platform("linux") == Platform("linux", "amd64")
    monkeypatch.setattr(sys, "platform", "darwin")
    assert native_platform() == Platform("linux", "amd64")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("linux/foo", 'unknown architecture "foo"'),
        ("plan10/amd64", 'unknown operating system "plan10"'),
        ("linux/arm/v9", 'unknown variant "v9" for architecture arm'),
        ("linux/amd64/v7", 'unknown variant "v7" for architecture amd64'),
        ("linux/arm64/v7", 'unknown variant "v7" for architecture arm64'),
        ("linux/amd64/v2/x", "too many or empty parts"),
        ("linux//amd64", "too many or empty parts"),
        ("", "too many or empty parts"),
        ("foo", 'unknown architecture "foo"'),
    ],
)
def test_parse_platform_rejects(value: str, why: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_platform(value)
    assert info.value.one_line() == f'invalid platform "{value}": {why}; {PLATFORM_HINT}'
    assert info.value.exit_code == ExitCode.USAGE


def test_parse_platforms_comma_lists_repeats_and_dedupes() -> None:
    got = parse_platforms(["linux/amd64,linux/arm64", "linux/aarch64", "windows/amd64,"], {})
    assert [str(p) for p in got] == ["linux/amd64", "linux/arm64", "windows/amd64"]


def test_parse_platforms_default_from_environment() -> None:
    env = {"DOCKER_DEFAULT_PLATFORM": "linux/arm64,linux/386"}
    assert [str(p) for p in parse_platforms([], env)] == ["linux/arm64", "linux/386"]
    assert [str(p) for p in parse_platforms(["linux/s390x"], env)] == ["linux/s390x"]
    assert parse_platforms([], {}) == ()


# --secret ---------------------------------------------------------------------------------


def test_parse_secret_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "token").write_text("s3cret")
    expected = SecretSpec("tok", str(tmp_path / "token"), None)
    assert parse_secret("id=tok,src=token", {}) == expected
    assert parse_secret("id=tok,source=token,type=file", {}) == expected
    assert parse_secret('"id=tok","src=token"', {}) == expected


def test_parse_secret_env() -> None:
    assert parse_secret("id=tok,env=TOKEN", {}) == SecretSpec("tok", None, "TOKEN")
    assert parse_secret("id=tok,type=env", {}) == SecretSpec("tok", None, "tok")
    assert parse_secret("id=tok,type=env,src=TOKEN", {}) == SecretSpec("tok", None, "TOKEN")


def test_parse_secret_bare_id_prefers_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_secret("id=TOKEN", {"TOKEN": "x"}) == SecretSpec("TOKEN", None, "TOKEN")
    (tmp_path / "TOKEN").write_text("x")
    assert parse_secret("id=TOKEN", {}) == SecretSpec("TOKEN", str(tmp_path / "TOKEN"), None)


SECRET_HINT = "use id=ID,src=FILE or id=ID,env=VARIABLE"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("src=x", 'invalid --secret "src=x": missing id='),
        ("id=", 'invalid --secret "id=": missing id='),
        ("tok", 'invalid --secret "tok": expected KEY=VALUE, got "tok"'),
        ("id=a,colour=red", 'invalid --secret "id=a,colour=red": unknown key "colour"'),
        ("id=a,type=ssh", 'invalid --secret "id=a,type=ssh": type must be file or env'),
        ("id=a,src=f,env=E", 'invalid --secret "id=a,src=f,env=E": give src= or env=, not both'),
        ("id=a,src=/no/such/file", 'secret file "/no/such/file" for --secret id=a not found'),
        ("id=missing", 'secret file "missing" for --secret id=missing not found'),
    ],
)
def test_parse_secret_rejects(
    value: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as info:
        parse_secret(value, {})
    assert info.value.one_line() == f"{message}; {SECRET_HINT}"


# --ssh ------------------------------------------------------------------------------------


def test_parse_ssh(tmp_path: Path) -> None:
    sock, key1, key2 = (tmp_path / n for n in ("agent.sock", "k1", "k2"))
    for path in (sock, key1, key2):
        path.write_text("")
    env = {"SSH_AUTH_SOCK": str(sock)}
    assert parse_ssh("default", env) == SSHSpec("default", (str(sock),))
    assert parse_ssh(f"default={sock}", {}) == SSHSpec("default", (str(sock),))
    assert parse_ssh(f"deploy={key1},{key2}", {}) == SSHSpec("deploy", (str(key1), str(key2)))


@pytest.mark.parametrize(
    ("value", "environ", "line"),
    [
        (
            "default",
            {},
            "--ssh default needs an SSH agent but SSH_AUTH_SOCK is not set; "
            "start ssh-agent or pass --ssh ID=KEYFILE",
        ),
        (
            "=/x",
            {},
            'invalid --ssh "=/x": bad id ""; use default, default=SOCKET, or ID=KEYFILE[,KEYFILE...]',
        ),
        (
            "a b=/x",
            {},
            'invalid --ssh "a b=/x": bad id "a b"; use default, default=SOCKET, or ID=KEYFILE[,KEYFILE...]',
        ),
        (
            "key=/no/such/key",
            {},
            '--ssh key: "/no/such/key" not found; use default, default=SOCKET, or ID=KEYFILE[,KEYFILE...]',
        ),
    ],
)
def test_parse_ssh_rejects(value: str, environ: dict[str, str], line: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_ssh(value, environ)
    assert info.value.one_line() == line


# --output ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("type=oci,dest=out.tar", OutputSpec("oci", {}, "out.tar")),
        ("type=docker,dest=img.tar", OutputSpec("docker", {}, "img.tar")),
        ("type=tar,dest=-", OutputSpec("tar", {}, "-")),
        ("type=local,dest=out", OutputSpec("local", {}, "out")),
        ("out/dir", OutputSpec("local", {}, "out/dir")),
        ("-", OutputSpec("tar", {}, "-")),
        ("type=image,name=r/a:1,push=true",
         OutputSpec("image", {"name": "r/a:1", "push": "true"}, None)),
        ("type=registry", OutputSpec("image", {"push": "true"}, None)),
        ('type=image,"name=a,b"', OutputSpec("image", {"name": "a,b"}, None)),
        ("type=oci,dest=o.tar,compression=zstd",
         OutputSpec("oci", {"compression": "zstd"}, "o.tar")),
        ("type=cacheonly", OutputSpec("cacheonly", {}, None)),
        ("type=oci,tar=false,dest=layout", OutputSpec("oci", {"tar": "false"}, "layout")),
        ("type=docker,tar=False,dest=layout", OutputSpec("docker", {"tar": "False"}, "layout")),
        ("Type=OCI,Dest=o.tar,annotation.org.Example=x",
         OutputSpec("oci", {"annotation.org.Example": "x"}, "o.tar")),
    ],
)  # fmt: skip
def test_parse_output(value: str, expected: OutputSpec) -> None:
    got = parse_output(value)
    assert (got.type, dict(got.attrs), got.dest) == (expected.type, expected.attrs, expected.dest)


def test_docker_output_without_dest_loads_into_the_cluster(context: Path) -> None:
    got = parse_output("type=docker,context=desktop-linux,compression=zstd")
    assert (got.type, dict(got.attrs), got.dest, got.loads) == ("image", {"compression": "zstd"}, None, True)
    opts = options(tag=("r/a:1",), output=("type=docker",))
    assert opts.load
    assert [(o.type, dict(o.attrs)) for o in opts.outputs] == [("image", {"name": "r/a:1"})]
    assert not options(tag=("r/a:1",), output=("type=docker,dest=d.tar",)).load


def test_output_pushes() -> None:
    assert parse_output("type=registry").pushes
    assert not parse_output("type=image,name=a").pushes
    assert not parse_output("type=image,name=a,push=false").pushes


OUTPUT_HINT = (
    "use type=local,dest=DIR, type=tar|oci|docker,dest=FILE (or dest=- for stdout), "
    "type=oci|docker,tar=false,dest=DIR, "
    "type=image,name=NAME[,push=true], type=registry, or a directory"
)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("type=foo", 'unknown type "foo"'),
        ("dest=out", "missing type="),
        ("type=local", "type=local needs dest=DIR"),
        ("type=local,dest=-", "type=local needs dest=DIR"),
        ("type=oci", "type=oci needs dest=FILE or dest=-"),
        ("type=tar,dest=", "type=tar needs dest=FILE or dest=-"),
        ("type=image,dest=x", "type=image takes no dest"),
        ("type=oci,dest", 'expected KEY=VALUE, got "dest"'),
        ("type=oci,tar=false", "type=oci,tar=false needs dest=DIR"),
        ("type=docker,tar=0,dest=-", "type=docker,tar=false needs dest=DIR"),
        ("type=oci,tar=no,dest=x", "tar= must be true or false"),
        ("type=local,tar=false,dest=x", "type=local takes no tar="),
    ],
)
def test_parse_output_rejects(value: str, why: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_output(value)
    assert info.value.one_line() == f'invalid --output "{value}": {why}; {OUTPUT_HINT}'


# --cache-from / --cache-to ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "export", "expected"),
    [
        ("reg/cache:main", False, CacheSpec("registry", {"ref": "reg/cache:main"})),
        ("type=registry,ref=r/c", False, CacheSpec("registry", {"ref": "r/c"})),
        ("type=registry,ref=r/c,mode=max", True,
         CacheSpec("registry", {"ref": "r/c", "mode": "max"})),
        ("type=inline", True, CacheSpec("inline", {})),
        ("type=local,src=dir", False, CacheSpec("local", {"src": "dir"})),
        ("type=local,dest=dir", True, CacheSpec("local", {"dest": "dir"})),
        ("type=gha", True, CacheSpec("gha", {})),
    ],
)  # fmt: skip
def test_parse_cache(value: str, export: bool, expected: CacheSpec) -> None:
    got = parse_cache(value, export=export)
    assert (got.type, dict(got.attrs)) == (expected.type, expected.attrs)


CACHE_HINT = (
    "use a registry ref, type=registry,ref=REF[,mode=max], type=inline, "
    "type=local,src=DIR|dest=DIR, type=gha, type=s3 or type=azblob"
)


@pytest.mark.parametrize(
    ("value", "export", "why"),
    [
        ("type=foo", True, 'unknown type "foo"'),
        ("ref=x,mode=max", True, "missing type="),
        ("type=registry", False, "type=registry needs ref="),
        ("type=local", True, "type=local needs dest="),
        ("type=local,dest=d", False, "type=local needs src="),
        ("type=registry,ref=r,mode=all", True, "mode must be min or max"),
        (" ", False, "empty"),
    ],
)
def test_parse_cache_rejects(value: str, export: bool, why: str) -> None:
    flag = "--cache-to" if export else "--cache-from"
    with pytest.raises(UsageError) as info:
        parse_cache(value, export=export)
    assert info.value.one_line() == f'invalid {flag} "{value}": {why}; {CACHE_HINT}'


def test_inline_cache_is_not_a_source() -> None:
    with pytest.raises(UsageError) as info:
        parse_cache("type=inline", export=False)
    assert info.value.one_line() == (
        'invalid --cache-from "type=inline": inline cache is read from an image; '
        "use --cache-from type=registry,ref=IMAGE"
    )


# --build-arg, --label, --add-host ---------------------------------------------------------


def test_parse_build_args() -> None:
    env = {"FROM_ENV": "e", "EMPTY": ""}
    got = parse_build_args(["A=1", "B=x=y", "C=", "FROM_ENV", "EMPTY", "UNSET"], env)
    assert got == {"A": "1", "B": "x=y", "C": "", "FROM_ENV": "e", "EMPTY": ""}


@pytest.mark.parametrize("value", ["=1", "", " A=1", "A =1"])
def test_parse_build_args_rejects(value: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_build_args([value], {})
    assert info.value.one_line() == f'invalid --build-arg "{value}": expected KEY=VALUE or KEY'


def test_parse_labels() -> None:
    assert parse_labels(["a=1", "b", "c=x=y"]) == {"a": "1", "b": "", "c": "x=y"}
    with pytest.raises(UsageError, match='invalid --label "=x"'):
        parse_labels(["=x"])


def test_parse_add_hosts() -> None:
    got = parse_add_hosts(["db:10.0.0.5", "v6:::1", "br=[fe80::1]", "eq=192.168.1.1"])
    assert got == (("db", "10.0.0.5"), ("v6", "::1"), ("br", "fe80::1"), ("eq", "192.168.1.1"))


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("db", 'invalid --add-host "db"; use HOST:IP, e.g. db:10.0.0.5'),
        ("db:notanip", 'invalid --add-host "db:notanip"; use HOST:IP, e.g. db:10.0.0.5'),
        (":1.2.3.4", 'invalid --add-host ":1.2.3.4"; use HOST:IP, e.g. db:10.0.0.5'),
        (
            "gw:host-gateway",
            '--add-host "gw:host-gateway": host-gateway needs the Docker engine; '
            "give the gateway's IP address instead",
        ),
    ],
)
def test_parse_add_hosts_rejects(value: str, line: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_add_hosts([value])
    assert info.value.one_line() == line


# build_options: context, Dockerfile, tags ---------------------------------------------------


def test_defaults(context: Path) -> None:
    opts = options()
    assert opts.context == "ctx"
    assert opts.dockerfile == os.path.join("ctx", "Dockerfile")
    assert (opts.tags, opts.platforms, opts.outputs, opts.secrets) == ((), (), (), ())
    assert (opts.progress, opts.network, opts.builder) == ("auto", "default", DEFAULT_BUILDER)
    assert opts.buildkit_host is None and not opts.push and not opts.quiet


def test_lowercase_dockerfile_fallback(context: Path) -> None:
    (context / "Dockerfile").rename(context / "dockerfile")
    assert options().dockerfile == os.path.join("ctx", "dockerfile")


def test_file_flag_is_relative_to_cwd(context: Path) -> None:
    (context.parent / "other.Dockerfile").write_text("FROM scratch\n")
    assert options(file="other.Dockerfile").dockerfile == "other.Dockerfile"
    assert options(file="-").dockerfile == "-"


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (
            {"context": "nope"},
            'build context "nope" not found; pass a directory, a Git or HTTP(S) URL, or - to read stdin',
        ),
        (
            {"context": "ctx/Dockerfile"},
            'build context "ctx/Dockerfile" is not a directory; '
            "pass a directory, a Git or HTTP(S) URL, or - to read stdin",
        ),
        (
            {"file": "missing.Dockerfile"},
            'Dockerfile "missing.Dockerfile" not found; '
            "pass its path with -f, or add a Dockerfile to the context",
        ),
        (
            {"file": "ctx"},
            'Dockerfile "ctx" is not a file; pass its path with -f, or add a Dockerfile to the context',
        ),
    ],
)
def test_context_errors(context: Path, flags: dict[str, str], line: str) -> None:
    with pytest.raises(ContextError) as info:
        options(**flags)
    assert info.value.one_line() == line
    assert info.value.exit_code == ExitCode.CONTEXT


def test_missing_default_dockerfile(context: Path) -> None:
    (context / "Dockerfile").unlink()
    with pytest.raises(ContextError, match=r'Dockerfile "ctx/Dockerfile" not found'):
        options()


@pytest.mark.parametrize(
    "remote",
    ["https://github.com/o/r.git#main:dir", "git@github.com:o/r.git", "github.com/o/r",
     "http://example.com/ctx.tar.gz", "git://host/repo", "ssh://git@host/repo.git"],
)  # fmt: skip
def test_remote_contexts_are_not_checked_locally(context: Path, remote: str) -> None:
    opts = options(context=remote, file="sub/Dockerfile")
    assert (opts.context, opts.dockerfile) == (remote, "sub/Dockerfile")


def test_stdin_context(context: Path) -> None:
    assert (options(context="-").context, options(context="-").dockerfile) == ("-", None)
    with pytest.raises(UsageError) as info:
        options(context="-", file="-")
    assert info.value.one_line() == (
        "the context and the Dockerfile cannot both come from stdin; pass a context directory with -f -"
    )


@pytest.mark.parametrize(
    "tag",
    ["app", "app:1.0", "reg.example.com/team/app:v1", "localhost:5000/app",
     "127.0.0.1:5000/a/b:c", "a__b/c-d.e", "[::1]:5000/app:x",
     "app@sha256:" + "a" * 64],
)  # fmt: skip
def test_valid_tags(context: Path, tag: str) -> None:
    assert options(tag=(tag,)).tags == (tag,)


@pytest.mark.parametrize(
    ("tag", "why"),
    [
        ("App:1", "repository name must be lowercase"),
        ("app:", "invalid reference format"),
        ("-app", "invalid reference format"),
        ("app:bad tag", "invalid reference format"),
        ("", "invalid reference format"),
        ("a" * 256, "invalid reference format"),
    ],
)
def test_invalid_tags(context: Path, tag: str, why: str) -> None:
    with pytest.raises(UsageError) as info:
        options(tag=(tag,))
    assert info.value.one_line() == f'invalid tag "{tag}": {why}; use [REGISTRY/]REPOSITORY[:TAG]'


# build_options: outputs and --push --------------------------------------------------------


def _outputs(opts: BuildOptions) -> list[tuple[str, dict[str, str], str | None]]:
    return [(o.type, dict(o.attrs), o.dest) for o in opts.outputs]


def test_push_adds_a_named_image_output(context: Path) -> None:
    opts = options(tag=("r/a:1", "r/a:latest"), push=True)
    assert _outputs(opts) == [("image", {"push": "true", "name": "r/a:1,r/a:latest"}, None)]
    assert opts.push


def test_push_and_registry_output_dedupe(context: Path) -> None:
    opts = options(tag=("r/a",), push=True, output=("type=registry", "type=image,push=true"))
    assert _outputs(opts) == [("image", {"push": "true", "name": "r/a"}, None)]


def test_push_sets_push_on_image_outputs_and_keeps_others(context: Path) -> None:
    opts = options(push=True, output=("type=image,name=r/b", "type=oci,dest=o.tar"))
    assert _outputs(opts) == [
        ("image", {"name": "r/b", "push": "true"}, None),
        ("oci", {}, "o.tar"),
    ]


def test_tags_name_image_like_outputs(context: Path) -> None:
    opts = options(tag=("r/a",), output=("type=docker,dest=d.tar", "type=local,dest=out"))
    assert _outputs(opts) == [("docker", {"name": "r/a"}, "d.tar"), ("local", {}, "out")]


@pytest.mark.parametrize(
    "flags",
    [{"push": True}, {"output": ("type=registry",)}, {"push": True, "output": ("type=image",)}],
)
def test_push_needs_a_name(context: Path, flags: dict[str, object]) -> None:
    with pytest.raises(UsageError) as info:
        options(**flags)
    assert info.value.one_line() == (
        "nothing to push: the image has no name; "
        "tag it with -t REGISTRY/NAME[:TAG] or pass --output type=image,name=..."
    )


def test_one_stdout_output_only(context: Path) -> None:
    with pytest.raises(UsageError, match=r"only one --output can write to stdout"):
        options(output=("-", "type=oci,dest=-"))


def test_layout_outputs_know_they_are_directories(context: Path) -> None:
    assert parse_output("type=oci,tar=false,dest=d").layout_dir
    assert not parse_output("type=oci,tar=true,dest=d").layout_dir
    assert not parse_output("type=oci,dest=d").layout_dir
    with pytest.raises(UsageError, match=r"only one --output can be an OCI layout directory"):
        options(output=("type=oci,tar=false,dest=a", "type=docker,tar=false,dest=b"))


def test_quiet_conflicts_with_stdout_output(context: Path) -> None:
    with pytest.raises(UsageError) as info:
        options(quiet=True, output=("-",))
    assert info.value.one_line() == (
        "-q prints the digest on stdout, which --output dest=- also uses; "
        "write the output to a file or drop -q"
    )


# build_options: progress, network, entitlements, daemon, environment ---------------------


def test_progress(context: Path) -> None:
    assert options(progress="plain").progress == "plain"
    assert options(environ={"BUILDKIT_PROGRESS": "rawjson"}).progress == "rawjson"
    assert options(progress="tty", environ={"BUILDKIT_PROGRESS": "plain"}).progress == "tty"
    assert options(quiet=True).progress == "quiet"
    assert options(quiet=True, environ={"BUILDKIT_PROGRESS": "plain"}).progress == "quiet"


def test_progress_rejects(context: Path) -> None:
    with pytest.raises(UsageError) as info:
        options(progress="fancy")
    assert info.value.one_line() == (
        'invalid --progress "fancy"; use one of auto, tty, plain, quiet, rawjson, none'
    )
    with pytest.raises(UsageError) as info:
        options(progress="plain", quiet=True)
    assert info.value.one_line() == "-q cannot be combined with --progress plain; drop one of them"


def test_network_and_allow(context: Path) -> None:
    opts = options(network="host")
    assert (opts.network, opts.allow) == ("host", ("network.host",))
    opts = options(allow=("security.insecure,network.host",), network="host")
    assert opts.allow == ("security.insecure", "network.host")
    assert options(allow=("network.host", "network.host")).allow == ("network.host",)
    with pytest.raises(UsageError) as info:
        options(network="bridge")
    assert info.value.one_line() == 'invalid --network "bridge"; use one of default, host, none'
    with pytest.raises(UsageError) as info:
        options(allow=("device",))
    assert info.value.one_line() == ('invalid --allow "device"; use one of network.host, security.insecure')


def test_buildkit_host_and_tls(context: Path, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    opts = options(buildkit_host="tcp://bk:1234", tlscacert=str(ca), tlsservername="bk")
    assert (opts.buildkit_host, opts.tls_ca_cert, opts.tls_server_name) == (
        "tcp://bk:1234",
        str(ca),
        "bk",
    )
    env = {"BUILDKIT_HOST": "unix:///run/buildkit/buildkitd.sock"}
    assert options(environ=env).buildkit_host == "unix:///run/buildkit/buildkitd.sock"


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        ({"buildkit_host": "docker-container://bk"},
         'unsupported buildkit host "docker-container://bk"; '
         "use unix:///path/to/buildkitd.sock or tcp://HOST:PORT"),
        ({"buildkit_host": "tcp://bk"},
         'invalid buildkit host "tcp://bk"; use unix:///path/to/buildkitd.sock or tcp://HOST:PORT'),
        ({"tlscacert": "ca.pem"},
         "TLS flags need --buildkit-host; "
         "pass --buildkit-host tcp://HOST:PORT or set BUILDKIT_HOST"),
        ({"buildkit_host": "tcp://bk:1", "tlscert": "c.pem"},
         "--tlscert and --tlskey must be given together"),
        ({"buildkit_host": "tcp://bk:1", "tlscacert": "nope.pem"},
         '--tlscacert file "nope.pem" not found'),
    ],
)  # fmt: skip
def test_buildkit_host_rejects(context: Path, flags: dict[str, str], line: str) -> None:
    with pytest.raises(UsageError) as info:
        options(**flags)
    assert info.value.one_line() == line


def test_everything_parsed(context: Path, tmp_path: Path) -> None:
    (tmp_path / "s").write_text("x")
    opts = options(
        tag=("r/a",),
        platform=("linux/amd64,linux/arm64",),
        build_arg=("A=1", "HOME_DIR"),
        label=("l=v",),
        target="final",
        no_cache=True,
        no_cache_filter=("base,deps", "base"),
        pull=True,
        secret=("id=s,src=s", "id=t,env=T", "id=s,env=S"),
        cache_from=("r/cache",),
        cache_to=("type=inline",),
        add_host=("db:10.0.0.1",),
        iidfile="iid",
        metadata_file="meta.json",
        debug=True,
        load=True,
        builder="b1",
        registry_secret="creds",
        namespace="ci",
        kubeconfig="kc",
        kube_context="kind",
        environ={"HOME_DIR": "/h", "BUILDKIT_BUILDER": "ignored"},
    )
    assert dict(opts.build_args) == {"A": "1", "HOME_DIR": "/h"}
    assert dict(opts.labels) == {"l": "v"}
    assert opts.no_cache_filter == ("base", "deps")
    assert opts.secrets == (SecretSpec("s", None, "S"), SecretSpec("t", None, "T"))
    assert opts.cache_from == (CacheSpec("registry", {"ref": "r/cache"}),)
    assert opts.cache_to[0].type == "inline"
    assert opts.add_hosts == (("db", "10.0.0.1"),)
    assert (opts.target, opts.no_cache, opts.pull, opts.load, opts.debug) == (
        "final",
        True,
        True,
        True,
        True,
    )
    assert (opts.iidfile, opts.metadata_file) == ("iid", "meta.json")
    assert (opts.builder, opts.registry_secret, opts.namespace) == ("b1", "creds", "ci")
    assert (opts.kubeconfig, opts.kube_context) == ("kc", "kind")


def test_inline_cache_build_arg(context: Path) -> None:
    opts = options(build_arg=("BUILDKIT_INLINE_CACHE=1",))
    assert opts.cache_to == (CacheSpec("inline", {}),)
    assert options(build_arg=("BUILDKIT_INLINE_CACHE=1",), cache_to=("type=inline",)).cache_to == (
        CacheSpec("inline", {}),
    )
    assert options(build_arg=("BUILDKIT_INLINE_CACHE=0",)).cache_to == ()


def test_builder_from_environment(context: Path) -> None:
    assert options(environ={"BUILDKIT_BUILDER": "shared"}).builder == "shared"
    assert options(environ={"BUILDX_BUILDER": "from-ci"}).builder == "from-ci"
    assert options(environ={"BUILDKIT_BUILDER": "ours", "BUILDX_BUILDER": "theirs"}).builder == "ours"
    assert options(builder="flag", environ={"BUILDX_BUILDER": "theirs"}).builder == "flag"


def test_options_are_frozen(context: Path) -> None:
    opts = options()
    with pytest.raises(AttributeError):
        opts.push = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        options(build_arg=("A=1",)).build_args["A"] = "2"  # type: ignore[index]


def test_mode_transport_and_qemu_image_defaults(context: Path) -> None:
    got = options()
    assert (got.mode, got.transport) == ("auto", "kubectl")
    assert got.qemu_image == "docker.io/tonistiigi/binfmt:latest"


def test_mode_and_transport_from_environment_flags_win(context: Path) -> None:
    environ = {"KUBECTL_BUILD_MODE": "qemu", "KUBECTL_BUILD_TRANSPORT": "websocket"}
    assert (options(environ=environ).mode, options(environ=environ).transport) == ("qemu", "websocket")
    flagged = options(environ=environ, mode="cross", transport="kubectl", qemu_image="reg/binfmt:1")
    assert (flagged.mode, flagged.transport, flagged.qemu_image) == ("cross", "kubectl", "reg/binfmt:1")


@pytest.mark.parametrize("variable", ["KUBECTL_BUILD_MODE", "KUBECTL_BUILD_TRANSPORT"])
def test_bad_environment_choice_is_a_usage_error(context: Path, variable: str) -> None:
    with pytest.raises(UsageError) as info:
        options(environ={variable: "fast"})
    assert '"fast"' in info.value.message
    assert info.value.hint is not None and info.value.hint.startswith("use one of")

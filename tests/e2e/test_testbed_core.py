"""The core test bed itself, against its real components (hack/testbed up core):
binfmt/qemu emulation, the plain and TLS+auth registries, the seeded base images and
buildkitd. A missing test bed fails these tests (load_testbed raises), it never skips."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import tarfile
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.e2e.helpers import Testbed as Bed  # not `Testbed`: pytest would try to collect it

pytestmark = pytest.mark.e2e

ENV_KEYS = {
    "BUILDKIT_HOST",
    "KB_BUILDCTL",
    "KB_BUILDKITD",
    "KB_BUILDKIT_VERSION",
    "KB_REGISTRY",
    "KB_REGISTRY_TLS",
    "KB_REGISTRY_USER",
    "KB_REGISTRY_PASSWORD",
    "KB_REGISTRY_CA",
    "KB_DOCKER_CONFIG",
    "KB_STATE",
    "BUILDKIT_HOST_OLD",
    "KB_BUILDCTL_OLD",
    "KB_BUILDKITD_OLD",
    "KB_BUILDKIT_OLD_VERSION",
}
INDEX_ACCEPT = (
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json"
)
BUSYBOX_PLATFORMS = {
    ("linux", "amd64", None),
    ("linux", "386", None),
    ("linux", "arm", "v6"),
    ("linux", "arm", "v7"),
    ("linux", "arm64", None),
    ("linux", "ppc64le", None),
    ("linux", "s390x", None),
}


def _get(url: str, headers: dict | None = None, context: ssl.SSLContext | None = None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def _ca_context(tb: Bed) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=tb.env["KB_REGISTRY_CA"])


def _basic(tb: Bed) -> dict:
    raw = f"{tb.env['KB_REGISTRY_USER']}:{tb.env['KB_REGISTRY_PASSWORD']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def _index(tb: Bed, repo: str, tag: str) -> tuple[dict, str]:
    st, hdrs, body = _get(f"http://{tb.registry}/v2/{repo}/manifests/{tag}", {"Accept": INDEX_ACCEPT})
    assert st == 200, f"{repo}:{tag}: HTTP {st}"
    return json.loads(body), hdrs.get("Docker-Content-Digest", "")


def _blob_json(tb: Bed, repo: str, digest: str) -> dict:
    st, _, body = _get(f"http://{tb.registry}/v2/{repo}/blobs/{digest}")
    assert st == 200
    return json.loads(body)


def _buildctl(
    tb: Bed, *args: str, env: dict | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [tb.buildctl, "--addr", tb.buildkit_host, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"buildctl {' '.join(args)} failed:\n{done.stderr[-3000:]}"
    return done


def _build(tb: Bed, ctx: Path, platform: str, output: str, *extra: str, env: dict | None = None):
    return _buildctl(
        tb,
        "build",
        "--frontend",
        "dockerfile.v0",
        "--local",
        f"context={ctx}",
        "--local",
        f"dockerfile={ctx}",
        "--opt",
        f"platform={platform}",
        "--output",
        output,
        "--progress",
        "plain",
        *extra,
        env=env,
    )


def test_env_contract(testbed: Bed) -> None:
    assert set(testbed.env) >= ENV_KEYS
    assert testbed.buildkit_host.startswith("unix://")
    assert Path(testbed.buildkit_host.removeprefix("unix://")).is_socket()
    for key in ("KB_BUILDCTL", "KB_BUILDKITD"):
        assert os.access(testbed.env[key], os.X_OK), key
    assert Path(testbed.env["KB_REGISTRY_CA"]).is_file()
    cfg = json.loads((Path(testbed.env["KB_DOCKER_CONFIG"]) / "config.json").read_text())
    auth = base64.b64decode(cfg["auths"][testbed.registry_tls]["auth"]).decode()
    assert auth == f"{testbed.env['KB_REGISTRY_USER']}:{testbed.env['KB_REGISTRY_PASSWORD']}"
    version = subprocess.run(
        [testbed.env["KB_BUILDKITD"], "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert testbed.env["KB_BUILDKIT_VERSION"] in version


def test_old_buildkitd_is_a_second_daemon(testbed: Bed) -> None:
    """The oldest supported release runs beside the main daemon: own socket and root."""
    old = testbed.env["BUILDKIT_HOST_OLD"]
    assert old.startswith("unix://") and old != testbed.buildkit_host
    sock = Path(old.removeprefix("unix://"))
    assert sock.is_socket()
    assert sock.parent != Path(testbed.buildkit_host.removeprefix("unix://")).parent
    version = testbed.env["KB_BUILDKIT_OLD_VERSION"]
    assert version.startswith("v0.12.")
    for key in ("KB_BUILDCTL_OLD", "KB_BUILDKITD_OLD"):
        assert os.access(testbed.env[key], os.X_OK), key
        out = subprocess.run([testbed.env[key], "--version"], capture_output=True, text=True,
                             check=True).stdout
        assert version in out, (key, out)
    done = subprocess.run([testbed.env["KB_BUILDCTL_OLD"], "--addr", old, "debug", "workers", "-v"],
                          capture_output=True, text=True, timeout=60, check=True)
    plats = {p.strip() for line in done.stdout.splitlines() if line.startswith("Platforms:")
             for p in line.split(":", 1)[1].split(",")}
    assert {"linux/amd64", "linux/arm64"} <= plats
    config = (sock.parent / "buildkitd.toml").read_text()
    assert f'root = "{sock.parent / "root"}"' in config
    assert f'mirrors = ["{testbed.registry}"]' in config  # same registries as the main one


def test_plain_registry_answers(testbed: Bed) -> None:
    assert testbed.registry.startswith("127.0.0.1:")
    st, hdrs, _ = _get(f"http://{testbed.registry}/v2/")
    assert st == 200
    assert hdrs.get("Docker-Distribution-Api-Version") == "registry/2.0"


def test_tls_registry_requires_auth_and_verifies_with_ca(testbed: Bed) -> None:
    assert testbed.registry_tls.startswith("127.0.0.1:")
    url = f"https://{testbed.registry_tls}/v2/"
    st, hdrs, _ = _get(url, context=_ca_context(testbed))
    assert st == 401
    assert hdrs.get("WWW-Authenticate", "").startswith("Basic")
    st, _, _ = _get(url, _basic(testbed), context=_ca_context(testbed))
    assert st == 200
    bad = {"Authorization": "Basic " + base64.b64encode(b"testuser:wrong").decode()}
    assert _get(url, bad, context=_ca_context(testbed))[0] == 401
    # the certificate chains to our CA only, and names localhost as well
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(
            url, timeout=10, context=ssl.create_default_context(cafile=None, capath="/nonexistent")
        )
    port = testbed.registry_tls.rsplit(":", 1)[1]
    assert _get(f"https://localhost:{port}/v2/", _basic(testbed), context=_ca_context(testbed))[0] == 200


def test_binfmt_registered_with_p_flag() -> None:
    for arch in ("aarch64", "arm", "ppc64le", "s390x", "riscv64"):
        entry = Path(f"/proc/sys/fs/binfmt_misc/qemu-{arch}").read_text().splitlines()
        assert "enabled" in entry, arch
        flags = next(line.split(":", 1)[1].strip() for line in entry if line.startswith("flags:"))
        assert "P" in flags and "F" in flags, (arch, flags)


def test_buildkitd_workers_include_emulated_platforms(testbed: Bed) -> None:
    out = _buildctl(testbed, "debug", "workers", "-v").stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("Platforms:"))
    plats = {p.strip() for p in line.split(":", 1)[1].split(",")}
    assert {
        "linux/amd64",
        "linux/386",
        "linux/arm64",
        "linux/arm/v7",
        "linux/arm/v6",
        "linux/ppc64le",
        "linux/s390x",
        "linux/riscv64",
    } <= plats


def test_busybox_index_has_exactly_seven_platforms(testbed: Bed) -> None:
    index, digest = _index(testbed, "library/busybox", "latest")
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    plats = [
        (m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant"))
        for m in index["manifests"]
    ]
    assert len(plats) == 7 and set(plats) == BUSYBOX_PLATFORMS
    assert _index(testbed, "library/busybox", "1.36")[1] == digest
    for m in index["manifests"]:
        st, _, body = _get(
            f"http://{testbed.registry}/v2/library/busybox/manifests/{m['digest']}",
            {"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert st == 200
        cfg = _blob_json(testbed, "library/busybox", json.loads(body)["config"]["digest"])
        assert cfg["architecture"] == m["platform"]["architecture"]
        assert cfg["config"]["Cmd"] == ["sh"]
        assert any(e.startswith("PATH=") for e in cfg["config"]["Env"])


def test_golang_image(testbed: Bed) -> None:
    index, digest = _index(testbed, "library/golang", "1.26")
    assert _index(testbed, "library/golang", "latest")[1] == digest
    [m] = index["manifests"]
    assert (m["platform"]["os"], m["platform"]["architecture"]) == ("linux", "amd64")
    st, _, body = _get(
        f"http://{testbed.registry}/v2/library/golang/manifests/{m['digest']}",
        {"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    cfg = _blob_json(testbed, "library/golang", json.loads(body)["config"]["digest"])
    env = cfg["config"]["Env"]
    assert "GOPATH=/go" in env and "GOTOOLCHAIN=local" in env
    assert (
        "PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in env
    )
    assert cfg["config"]["WorkingDir"] == "/go"


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ("linux/arm64", "aarch64"),
        ("linux/arm/v7", "armv7l"),
        ("linux/s390x", "s390x"),
        ("linux/ppc64le", "ppc64le"),
    ],
)
def test_emulated_run_reports_target_arch(testbed: Bed, tmp_path: Path, platform: str, expected: str) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    # the nonce keeps the RUN step from being answered from the build cache
    (ctx / "Dockerfile").write_text(
        f"FROM busybox\nRUN echo {uuid.uuid4().hex} >/nonce && uname -m > /arch\n"
    )
    _build(testbed, ctx, platform, f"type=local,dest={tmp_path / 'out'}")
    assert (tmp_path / "out" / "arch").read_text().strip() == expected


@pytest.mark.timeout(600)
def test_golang_cross_build_for_arm64(testbed: Bed, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    nonce = uuid.uuid4().hex
    (ctx / "main.go").write_text(
        f'package main\n\nimport "fmt"\n\nfunc main() {{ fmt.Println("hello {nonce}") }}\n'
    )
    (ctx / "Dockerfile").write_text(
        "FROM --platform=$BUILDPLATFORM golang:1.26 AS build\n"
        "ARG TARGETOS TARGETARCH\n"
        "WORKDIR /src\n"
        "COPY main.go .\n"
        "RUN go mod init example.com/hello && "
        "CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -o /out/hello .\n"
        "FROM scratch\n"
        "COPY --from=build /out/hello /hello\n"
    )
    _build(testbed, ctx, "linux/arm64", f"type=local,dest={tmp_path / 'out'}")
    binary = tmp_path / "out" / "hello"
    head = binary.read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 183  # EM_AARCH64
    # and it runs, through the host's binfmt/qemu registration
    assert (
        subprocess.run([str(binary)], capture_output=True, text=True, timeout=60, check=True).stdout.strip()
        == f"hello {nonce}"
    )


@pytest.mark.timeout(300)
def test_nanoserver_standin_resolves(testbed: Bed, tmp_path: Path) -> None:
    index, _ = _index(testbed, "windows/nanoserver", "ltsc2022")
    [m] = index["manifests"]
    assert m["platform"]["os"] == "windows" and m["platform"]["os.version"].startswith("10.0.20348.")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("hi\n")
    (ctx / "Dockerfile").write_text(
        "FROM mcr.microsoft.com/windows/nanoserver:ltsc2022\nCOPY hello.txt /hello.txt\n"
    )
    _build(testbed, ctx, "windows/amd64", f"type=oci,dest={tmp_path / 'img.tar'}")
    with tarfile.open(tmp_path / "img.tar") as tar:
        out_index = json.load(tar.extractfile("index.json"))
    plat = out_index["manifests"][0]["platform"]
    assert plat["os"] == "windows" and plat["architecture"] == "amd64"
    assert plat["os.version"] == m["platform"]["os.version"]


@pytest.mark.timeout(300)
def test_push_to_tls_registry_with_docker_config_auth(testbed: Bed, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN echo {uuid.uuid4().hex} > /nonce\n")
    tag = uuid.uuid4().hex[:12]
    ref = f"{testbed.registry_tls}/testbed-core/push:{tag}"
    _build(
        testbed,
        ctx,
        "linux/arm64",
        f"type=image,name={ref},push=true",
        env={"DOCKER_CONFIG": testbed.env["KB_DOCKER_CONFIG"]},
    )
    url = f"https://{testbed.registry_tls}/v2/testbed-core/push/manifests/{tag}"
    accept = {"Accept": INDEX_ACCEPT + ", application/vnd.docker.distribution.manifest.v2+json"}
    assert _get(url, accept, context=_ca_context(testbed))[0] == 401
    assert _get(url, {**accept, **_basic(testbed)}, context=_ca_context(testbed))[0] == 200

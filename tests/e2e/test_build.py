"""kubectl build against the real buildkitd and registries of the test bed."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from kubectl_build.errors import ExitCode
from tests.e2e.helpers import REPO, Testbed, cli_path, run_cli
from tests.e2e.registry_helpers import (
    attested_digests,
    is_attestation,
    platforms_of,
    read_file_from_image,
    tls_registry,
)

pytestmark = pytest.mark.e2e

CROSS_PLATFORMS = ("linux/386", "linux/amd64", "linux/arm/v6", "linux/arm/v7", "linux/arm64",
                   "windows/amd64")


def _ctx(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_text(text)
    return ctx


def test_cross_example_six_platforms_pushed(testbed: Testbed, tmp_path: Path) -> None:
    """The README's example: one invocation, six platforms, one index in the TLS registry."""
    tag = f"{testbed.registry_tls}/e2e/hello:cross-{int(time.time())}"
    run = run_cli(str(REPO / "examples"), "-f", str(REPO / "examples/Dockerfile.cross"),
                  "-t", tag, "--platform", ",".join(CROSS_PLATFORMS), "--push",
                  "--buildkit-host", testbed.buildkit_host, "--progress", "plain",
                  env={"DOCKER_CONFIG": testbed.env["KB_DOCKER_CONFIG"]})
    assert run.code == 0, run.stderr[-4000:]
    digest = run.stdout.strip()
    assert digest.startswith("sha256:")
    client = tls_registry(testbed)
    index = client.manifest("e2e/hello", tag.rsplit(":", 1)[1])
    assert index.digest == digest
    doc = index.json()
    assert platforms_of(doc) == set(CROSS_PLATFORMS)
    images = [m for m in doc["manifests"] if not is_attestation(m)]
    assert len(images) == len(CROSS_PLATFORMS)
    # buildx's default provenance (mode=min): one attestation manifest per image
    assert attested_digests(doc) == {m["digest"] for m in images}
    by_platform = {"/".join(x for x in (m["platform"]["os"], m["platform"]["architecture"],
                                       m["platform"].get("variant", "")) if x): m["digest"]
                   for m in images}
    for platform, expected in (("linux/arm64", "linux/arm64"), ("linux/arm/v7", "linux/armv7")):
        binary = tmp_path / platform.replace("/", "_")
        binary.write_bytes(read_file_from_image(client, "e2e/hello", by_platform[platform],
                                                "hello"))
        binary.chmod(0o755)
        # Runs through the host's binfmt_misc qemu registration.
        out = subprocess.run([str(binary)], capture_output=True, timeout=60, check=True)
        assert out.stdout.decode().startswith(f"hello from {expected}")
        assert "running on linux/" + platform.split("/")[1] in out.stdout.decode()


def test_qemu_run_steps(testbed: Testbed, tmp_path: Path) -> None:
    """RUN on the target platform: emulated by the daemon through binfmt/qemu."""
    ctx = _ctx(tmp_path, "FROM busybox\nRUN uname -m > /arch\n")
    out = tmp_path / "out"
    run = run_cli(str(ctx), "--platform", "linux/arm64,linux/arm/v7",
                  "--output", f"type=local,dest={out}", "--buildkit-host", testbed.buildkit_host,
                  "--progress", "plain")
    assert run.code == 0, run.stderr[-3000:]
    assert (out / "linux_arm64/arch").read_text().strip() == "aarch64"
    assert (out / "linux_arm_v7/arch").read_text().strip() == "armv7l"


def test_secrets_reach_run_and_no_layer(testbed: Testbed, tmp_path: Path) -> None:
    import hashlib

    file_value, env_value = "file-s3cr3t-value", "env-s3cr3t-value"
    secret_file = tmp_path / "token.txt"
    secret_file.write_text(file_value)

    def check(expr: str, value: str) -> str:
        # Compare digests: the RUN line itself is shown in the progress output.
        digest = hashlib.sha256(value.encode()).hexdigest()
        return f'test "$({expr} | sha256sum | cut -d" " -f1)" = {digest}'

    env_expr = 'printf %s "$ENVTOK"'
    ctx = _ctx(tmp_path, (
        "FROM busybox\n"
        f"RUN --mount=type=secret,id=tok {check('cat /run/secrets/tok', file_value)}\n"
        "RUN --mount=type=secret,id=envtok,env=ENVTOK "
        f"{check(env_expr, env_value)} && echo ok > /done\n"))
    out = tmp_path / "image.tar"
    run = run_cli(str(ctx), "--secret", f"id=tok,src={secret_file}",
                  "--secret", "id=envtok,env=MY_SECRET_VAR", "--no-cache",
                  "--output", f"type=oci,dest={out}", "--buildkit-host", testbed.buildkit_host,
                  "--progress", "plain", env={"MY_SECRET_VAR": "env-s3cr3t-value"})
    assert run.code == 0, run.stderr[-3000:]
    assert "s3cr3t" not in run.stderr + run.stdout
    with tarfile.open(out) as archive:
        for member in archive.getmembers():
            blob = archive.extractfile(member)
            if blob is None:
                continue
            data = blob.read()
            if data[:2] == b"\x1f\x8b":
                import gzip
                data = gzip.decompress(data)
            assert b"s3cr3t" not in data, member.name


def test_missing_secret_fails_the_step(testbed: Testbed, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM busybox\nRUN --mount=type=secret,id=nope,required cat /run/secrets/nope\n")
    run = run_cli(str(ctx), "--buildkit-host", testbed.buildkit_host, "--progress", "plain")
    assert run.code == ExitCode.BUILD_FAILED
    assert "nope" in run.stderr


def test_outputs_oci_docker_tar_local(testbed: Testbed, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM scratch\nCOPY hello.txt /greeting\n", {"hello.txt": "hi\n"})
    oci, docker, tar, local = (tmp_path / n for n in ("o.tar", "d.tar", "t.tar", "local"))
    run = run_cli(str(ctx), "-t", "example.com/out:test",
                  "--output", f"type=oci,dest={oci}", "--output", f"type=docker,dest={docker}",
                  "--output", f"type=tar,dest={tar}", "--output", f"type=local,dest={local}",
                  "--buildkit-host", testbed.buildkit_host, "--progress", "plain")
    assert run.code == 0, run.stderr[-3000:]
    _assert_oci_layout(oci)
    with tarfile.open(docker) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert manifest[0]["RepoTags"] == ["example.com/out:test"]
    with tarfile.open(tar) as archive:
        assert archive.extractfile("greeting").read() == b"hi\n"  # type: ignore[union-attr]
    assert (local / "greeting").read_text() == "hi\n"


def _assert_oci_layout(path: Path) -> None:
    import hashlib

    with tarfile.open(path) as archive:
        names = set(archive.getnames())
        assert "oci-layout" in names and "index.json" in names
        layout = json.load(archive.extractfile("oci-layout"))  # type: ignore[arg-type]
        assert layout["imageLayoutVersion"] == "1.0.0"
        index = json.load(archive.extractfile("index.json"))  # type: ignore[arg-type]
        for member in archive.getmembers():
            if member.name.startswith("blobs/sha256/") and member.isfile():
                data = archive.extractfile(member).read()  # type: ignore[union-attr]
                assert hashlib.sha256(data).hexdigest() == member.name.rsplit("/", 1)[1]
        top = index["manifests"][0]["digest"].split(":")[1]
        assert f"blobs/sha256/{top}" in names


def test_iidfile_and_metadata_file(testbed: Testbed, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM scratch\nCOPY a /a\n", {"a": "a"})
    iid, meta = tmp_path / "iid", tmp_path / "meta.json"
    run = run_cli(str(ctx), "--output", f"type=oci,dest={tmp_path / 'x.tar'}",
                  "--iidfile", str(iid), "--metadata-file", str(meta),
                  "--buildkit-host", testbed.buildkit_host, "-q")
    assert run.code == 0, run.stderr
    data = json.loads(meta.read_text())
    assert iid.read_text() == data["containerimage.config.digest"]
    assert run.stdout.strip() == data["containerimage.digest"]
    assert data["containerimage.descriptor"]["digest"] == data["containerimage.digest"]
    assert run.stderr == ""


def test_dockerfile_and_context_from_stdin(testbed: Testbed, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "unused", {"data": "from-context"})
    out = tmp_path / "o1"
    run = run_cli(str(ctx), "-f", "-", "--output", f"type=local,dest={out}",
                  "--buildkit-host", testbed.buildkit_host, "-q",
                  stdin=b"FROM scratch\nCOPY data /copied\n")
    assert run.code == 0, run.stderr
    assert (out / "copied").read_text() == "from-context"
    archive = tmp_path / "ctx.tar"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(ctx / "data", "data")
        info = tarfile.TarInfo("Dockerfile")
        body = b"FROM scratch\nCOPY data /from-tar\n"
        info.size = len(body)
        import io
        tar.addfile(info, io.BytesIO(body))
    out2 = tmp_path / "o2"
    run = run_cli("-", "--output", f"type=local,dest={out2}", "-q",
                  "--buildkit-host", testbed.buildkit_host, stdin=archive.read_bytes())
    assert run.code == 0, run.stderr
    assert (out2 / "from-tar").read_text() == "from-context"


def test_ssh_agent_forwarded(testbed: Testbed, tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    ctx = _ctx(tmp_path, "FROM busybox\nRUN --mount=type=ssh test -S \"$SSH_AUTH_SOCK\"\n")
    run = run_cli(str(ctx), "--ssh", f"default={key}", "--no-cache",
                  "--buildkit-host", testbed.buildkit_host, "--progress", "plain")
    assert run.code == 0, run.stderr[-3000:]


def test_registry_cache_export_and_import(testbed: Testbed, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, f"FROM busybox\nRUN echo {time.time()} > /stamp\n")
    cache = f"{testbed.registry_tls}/e2e/cache:{int(time.time())}"
    env = {"DOCKER_CONFIG": testbed.env["KB_DOCKER_CONFIG"]}
    first = run_cli(str(ctx), "--cache-to", f"type=registry,ref={cache},mode=max",
                    "--buildkit-host", testbed.buildkit_host, "--progress", "plain", env=env)
    assert first.code == 0, first.stderr[-3000:]
    client = tls_registry(testbed)
    cache_doc = client.manifest("e2e/cache", cache.rsplit(":", 1)[1]).json()
    assert cache_doc.get("manifests") or cache_doc.get("layers")
    second = run_cli(str(ctx), "--cache-from", f"type=registry,ref={cache}", "--no-cache-filter",
                     "never-a-stage", "--buildkit-host", testbed.buildkit_host,
                     "--progress", "plain", env=env)
    assert second.code == 0, second.stderr[-3000:]


def test_ctrl_c_cancels_and_exits_130(testbed: Testbed, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, f"FROM busybox\nRUN echo {time.time()} && sleep 120\n")
    proc = subprocess.Popen([cli_path(), str(ctx), "--buildkit-host", testbed.buildkit_host,
                             "--progress", "plain"], stderr=subprocess.PIPE)
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    seen = b""
    while b"sleep 120" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.read1(4096)  # type: ignore[attr-defined]
    time.sleep(1)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=30)
    assert code == 130
    assert time.monotonic() - started < 15


def test_fifo_and_mode_bits_do_not_break_transfer(testbed: Testbed, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM scratch\nCOPY . /\n", {"a": "a"})
    os.mkfifo(ctx / "pipe")
    (ctx / "a").chmod(0o4755)
    out = tmp_path / "out"
    run = run_cli(str(ctx), "--output", f"type=local,dest={out}", "-q",
                  "--buildkit-host", testbed.buildkit_host)
    assert run.code == 0, run.stderr
    assert stat.S_IMODE((out / "a").stat().st_mode) & 0o755 == 0o755


def test_shm_size_and_ulimits_reach_run_steps(testbed: Testbed, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM busybox\nRUN sh -c 'ulimit -Sn > /nofile; ulimit -Hn >> /nofile; "
                         "df -k /dev/shm | tail -1 > /shm'\n")
    out = tmp_path / "out"
    run = run_cli(str(ctx), "--buildkit-host", testbed.buildkit_host, "--progress", "quiet", "--no-cache",
                  "--shm-size", "96m", "--ulimit", "nofile=1000:2000", "-o", f"type=local,dest={out}")
    assert run.code == 0, run.stderr[-3000:]
    assert (out / "nofile").read_text().split() == ["1000", "2000"]
    assert (out / "shm").read_text().split()[1] == str(96 * 1024)  # 1K-blocks of /dev/shm


def test_progress_none_prints_no_progress(testbed: Testbed, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM scratch\nCOPY Dockerfile /d\n")
    run = run_cli(str(ctx), "--buildkit-host", testbed.buildkit_host, "--progress", "none",
                  "-o", f"type=local,dest={tmp_path / 'out'}")
    assert run.code == 0, run.stderr[-3000:]
    assert run.stderr == "" and (tmp_path / "out" / "d").exists()

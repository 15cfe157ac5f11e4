"""The deployment docs, run (``make test-deploy``; not in the default suite: it needs NGINX, which the make target
installs with apt when absent, and takes a few minutes).

Three ``cloud_app`` replicas on loopback behind real NGINX configured by the exact block in docs/deploy.md (read
from the page; only the replica addresses, the listening port and the certificate paths are replaced); one replica
is SIGKILLed mid-run, unary and ``--stream``, and no frame may be lost.  The same with gRPC's client-side
``round_robin`` over the three replicas.  The health Watch stream through NGINX must outlive NGINX's 60 s default
read timeout, reflection must be routed, and a single server restarted after 15 s must cost no frame.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from .test_newcomer import ENV, Q99, ROOT, edge_across_a_restart, free_port, start_cloud, stop

pytestmark = pytest.mark.deploy
grpc = pytest.importorskip("grpc")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
FRAMES = 120
KILL_AFTER = 20  # rows answered before a replica is killed


def nginx_block() -> str:
    """The NGINX block of docs/deploy.md, as a reader would copy it."""
    blocks = re.findall(r"```nginx\n(.*?)```", (ROOT / "docs" / "deploy.md").read_text(), re.S)
    assert len(blocks) == 1, "docs/deploy.md should show one NGINX block"
    return blocks[0]


def configure(block: str, replicas, port: int, cert: Path, key: Path) -> str:
    """The block with this machine's replicas, port and certificate in place of the page's, nothing else changed."""
    servers = re.findall(r"server \d+\.\d+\.\d+\.\d+:\d+ ", block)
    assert len(servers) == len(replicas) == 3
    for old, p in zip(servers, replicas):
        block = block.replace(old, f"server 127.0.0.1:{p} ", 1)
    for old, new in (("listen 443 ssl http2;", f"listen 127.0.0.1:{port} ssl http2;"),
                     ("ssl_certificate server.pem; ssl_certificate_key server.key;",
                      f"ssl_certificate {cert}; ssl_certificate_key {key};")):
        assert old in block, old
        block = block.replace(old, new)
    return block


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    d = tmp_path_factory.mktemp("deploy")
    os.chmod(d, 0o755)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(d / "server.key"), "-out",
                    str(d / "server.pem")], check=True, capture_output=True)
    from PIL import Image

    (d / "frames").mkdir()
    for i in range(FRAMES):
        Image.fromarray(np.full((48, 64, 3), (2 * i) % 256, np.uint8)).save(d / "frames" / f"{i:03d}.png")
    return d


class Replicas:
    def __init__(self, n: int = 3):
        self.ports = [free_port() for _ in range(n)]
        self.procs = [None] * n

    def ensure(self):
        """Every replica serving (the ones killed started again), in parallel."""
        with ThreadPoolExecutor(len(self.ports)) as pool:
            futures = {i: pool.submit(start_cloud, p, "--calibration", Q99)
                       for i, (p, proc) in enumerate(zip(self.ports, self.procs)) if proc is None or proc.poll() is not None}
            for i, f in futures.items():
                self.procs[i] = f.result()

    def kill(self, i: int):
        stop(self.procs[i], signal.SIGKILL)

    def close(self):
        for proc in self.procs:
            if proc is not None:
                stop(proc)


@pytest.fixture(scope="module")
def replicas():
    r = Replicas()
    r.ensure()
    yield r
    r.close()


@pytest.fixture(scope="module")
def nginx(tmp, replicas):
    if not Path(NGINX).exists():
        pytest.fail("NGINX is not installed: run `make test-deploy` (it installs it with apt)")
    port = free_port()
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / sub).mkdir(exist_ok=True)
    block = configure(nginx_block(), replicas.ports, port, tmp / "server.pem", tmp / "server.key")
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = tmp / "nginx.conf"
    conf.write_text(f"{user}worker_processes 1;\ndaemon off;\npid {tmp}/nginx.pid;\nerror_log {tmp}/error.log warn;\n"
                    "events { worker_connections 1024; }\n"
                    f"http {{\n access_log off;\n client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;\n"
                    f" fastcgi_temp_path {tmp}/fastcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;\n"
                    f"{block}\n}}\n")
    check = subprocess.run([NGINX, "-t", "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([NGINX, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")])
    deadline = time.time() + 10
    while True:
        try:
            import socket

            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.time() < deadline and proc.poll() is None, (tmp / "error.log").read_text()
            time.sleep(0.1)
    yield f"localhost:{port}"
    proc.send_signal(signal.SIGQUIT)  # graceful
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def edge_run_killing(server, tmp, replicas, victim, *extra):
    """Run the edge over every frame, SIGKILL replica ``victim`` after ``KILL_AFTER`` answers; its rows."""
    replicas.ensure()
    edge = subprocess.Popen([sys.executable, "-m", "edge_app", "--server", server, "--quantizer", str(Q99),
                             str(tmp / "frames"), "--json", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV, cwd=ROOT)
    seen = [edge.stdout.readline() for _ in range(1 + KILL_AFTER)]
    replicas.kill(victim)
    out, err = edge.communicate(timeout=600)
    rows = [json.loads(ln) for ln in seen + out.splitlines()]
    assert edge.returncode == 0, err[-3000:]
    return rows, err


@pytest.mark.parametrize("mode", ["unary", "stream"])
def test_behind_nginx_a_killed_replica_loses_no_frame(nginx, tmp, replicas, mode):
    extra = ["--tls-ca", str(tmp / "server.pem")] + (["--stream"] if mode == "stream" else [])
    rows, _ = edge_run_killing(nginx, tmp, replicas, 0 if mode == "unary" else 1, *extra)
    s = rows[-1]["summary"]
    assert (s["frames"], s["answered"], s["errors"]) == (FRAMES, FRAMES, 0)
    print(json.dumps({"deploy": f"nginx-{mode}", "frames": s["frames"], "answered": s["answered"], "lost": 0}))


@pytest.mark.parametrize("mode", ["unary", "stream"])
def test_client_side_round_robin_a_killed_replica_loses_no_frame(tmp, replicas, mode):
    server = ",".join(f"127.0.0.1:{p}" for p in replicas.ports)
    rows, _ = edge_run_killing(server, tmp, replicas, 2, *(["--stream"] if mode == "stream" else []))
    s = rows[-1]["summary"]
    assert (s["frames"], s["answered"], s["errors"]) == (FRAMES, FRAMES, 0)
    print(json.dumps({"deploy": f"round_robin-{mode}", "frames": s["frames"], "answered": s["answered"], "lost": 0}))


def test_health_watch_through_nginx_outlives_60_s(nginx, tmp, replicas):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    replicas.ensure()
    creds = grpc.ssl_channel_credentials(root_certificates=(tmp / "server.pem").read_bytes())
    with grpc.secure_channel(nginx, creds) as ch:
        watch = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(service=""), timeout=70)
        t0 = time.monotonic()
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as e:
            next(watch)  # nothing more to say while serving: the stream stays open until our own deadline
        held = time.monotonic() - t0
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED and held > 65, (e.value.code(), held)
    print(json.dumps({"deploy": "health-watch", "held_s": round(held, 1)}))


def test_reflection_is_routed_through_nginx(nginx, tmp, replicas):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    replicas.ensure()
    creds = grpc.ssl_channel_credentials(root_certificates=(tmp / "server.pem").read_bytes())
    with grpc.secure_channel(nginx, creds) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        (resp,) = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                                 timeout=10))
    names = {s.name for s in resp.list_services_response.service}
    assert "splitcodec.v1.SplitInference" in names and "grpc.health.v1.Health" in names


@pytest.mark.parametrize("mode", ["unary", "stream"])
def test_a_15_s_server_restart_loses_no_frame(tmp, mode):
    s, _, down = edge_across_a_restart(tmp / "frames", 15, KILL_AFTER, *(["--stream"] if mode == "stream" else []))
    assert (s["frames"], s["answered"], s["errors"]) == (FRAMES, FRAMES, 0)
    print(json.dumps({"deploy": f"restart-{mode}", "down_s": round(down, 1), "frames": s["frames"], "lost": 0}))

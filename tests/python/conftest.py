"""Fixtures that run the real ifad on a simulated host for the Python tests.

As tests/harness.rs does for the Rust tests: each daemon has its socket and
state dir in a private temp dir, no metrics listener, no config file
(IFAD_CONFIG=/dev/null), and is stopped with SIGTERM (then waited for,
bounded) when the test ends. Run through tests/python/run.sh, which sets
IFAD_BIN and puts the generated ifa.v1 stubs on PYTHONPATH.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "python" / "ifad_client.py"

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 5.0

# The :authority that every ifad has accepted (grpc-go sends it on Unix
# sockets). Readiness and the tests of other things use it, so that each
# test fails only for what it is about; test_authority covers the others.
PLAIN_AUTHORITY = (("grpc.default_authority", "localhost"),)


def _stubs():
    """The ifa.v1 stubs: from PYTHONPATH (run.sh), else generated now."""
    try:
        from ifa.v1 import ifa_pb2, ifa_pb2_grpc
    except ImportError:
        from grpc_tools import protoc

        out = tempfile.mkdtemp(prefix="ifa-stubs-")
        rc = protoc.main(["protoc", f"-I{REPO / 'proto'}", f"--python_out={out}",
                          f"--grpc_python_out={out}", str(REPO / "proto/ifa/v1/ifa.proto")])
        assert rc == 0, "protoc failed on proto/ifa/v1/ifa.proto"
        sys.path.insert(0, out)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (out, os.environ.get("PYTHONPATH")) if p)
        from ifa.v1 import ifa_pb2, ifa_pb2_grpc
    return ifa_pb2, ifa_pb2_grpc


pb, pb_grpc = _stubs()


def workspace_bin(name, env):
    """A binary of the workspace: `$env` if set, else cargo's debug build."""
    path = os.environ.get(env) or str(REPO / "target" / "debug" / name)
    if not os.access(path, os.X_OK):
        pytest.exit(f"no {name} binary at {path}: set {env} or run tests/python/run.sh",
                    returncode=1)
    return path


class Daemon:
    """A running `ifad --simulate=<spec>`, or with `spec` None the Linux
    backend on the host `args` name (`--host-root DIR`)."""

    def __init__(self, spec, args=()):
        # Short paths: a Unix socket path must fit in 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="ifad-py-"))
        self.socket = str(self.dir / "ifad.sock")
        # `{dir}` in args is this daemon's temp dir.
        args = [a.replace("{dir}", str(self.dir)) for a in args]
        self.log_path = self.dir / "ifad.log"
        env = {k: v for k, v in os.environ.items()
               if k not in ("IFAD_SOCKET", "IFAD_STATE_DIR")}
        env.update(IFAD_CONFIG="/dev/null", RUST_LOG="info")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [workspace_bin("ifad", "IFAD_BIN"), *([f"--simulate={spec}"] if spec else []), "--socket", self.socket,
                 "--state-dir", str(self.dir / "state"), "--metrics-listen", "off", *args],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self):
        """Until the health service says SERVING (bounded)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        last = "no answer"
        with self.channel(PLAIN_AUTHORITY) as ch:
            health = health_pb2_grpc.HealthStub(ch)
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    pytest.fail(f"ifad exited {self.proc.returncode}:\n{self.log()}")
                if os.path.exists(self.socket):
                    try:
                        reply = health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                        if reply.status == health_pb2.HealthCheckResponse.SERVING:
                            return
                        last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                    except grpc.RpcError as err:
                        last = f"{err.code().name}: {err.details()}"
                time.sleep(0.05)
        pytest.fail(f"ifad not SERVING after {START_TIMEOUT_S}s ({last}):\n{self.log()}")

    def channel(self, options=(), target=None):
        return grpc.insecure_channel(target or "unix:" + self.socket, options=list(options))

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self):
        """SIGTERM, then waits (bounded); SIGKILL if it hangs. Returns the
        exit status, or None if it had to be killed."""
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
                rc = None
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc


@pytest.fixture
def start_daemon():
    """Starts daemons (`start_daemon("harts=2,files=1", "--flag", ...)`), all
    stopped at teardown; a daemon that does not stop within the bound fails
    the test."""
    daemons = []

    def start(spec="", *args):
        d = Daemon(spec or "harts=8,files=5", args)
        daemons.append(d)
        return d

    yield start
    hung = [d.socket for d in daemons if d.stop() is None]
    assert not hung, f"ifad did not stop on SIGTERM within {STOP_TIMEOUT_S}s: {hung}"


# A RISC-V KVM host captured from a real kernel (4 harts x 5 VS-files).
HOST_FIXTURE = REPO / "daemon" / "tests" / "fixtures" / "hosts" / "qemu-virt-aia5"


@pytest.fixture
def linux_daemon():
    """The Linux backend reading the captured host: attach pins real threads
    (of processes the test starts) with sched_setaffinity."""
    d = Daemon(None, ["--host-root", str(HOST_FIXTURE)])
    yield d
    assert d.stop() is not None, f"ifad did not stop on SIGTERM within {STOP_TIMEOUT_S}s"


class FakeVmm:
    """tests/bin/fake_vmm.rs: threads named like QEMU's (`CPU <n>/KVM`)."""

    def __init__(self, vcpus):
        self.proc = subprocess.Popen([workspace_bin("fake-vmm", "FAKE_VMM_BIN"), str(vcpus)], stdout=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True)
        # It exits by itself within a minute; "ready" once every thread runs.
        assert self.proc.stdout.readline().strip() == "ready"
        self.pid = self.proc.pid

    def affinity(self):
        """{thread name: allowed CPUs} of its vCPU threads, as the kernel says."""
        out = {}
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            name = Path(f"/proc/{self.pid}/task/{tid}/comm").read_text().strip()
            if name.startswith("CPU "):
                out[name] = sorted(os.sched_getaffinity(int(tid)))
        return out

    def stop(self):
        self.proc.kill()
        self.proc.wait(STOP_TIMEOUT_S)


@pytest.fixture
def fake_vmm():
    vmms = []

    def start(vcpus):
        vmms.append(FakeVmm(vcpus))
        return vmms[-1]

    yield start
    for v in vmms:
        v.stop()


@pytest.fixture
def daemon(start_daemon):
    """ifad on the default simulated host (8 harts x 5 VS-files)."""
    return start_daemon()


@pytest.fixture
def stub(daemon):
    with daemon.channel(PLAIN_AUTHORITY) as ch:
        yield pb_grpc.AllocatorStub(ch)

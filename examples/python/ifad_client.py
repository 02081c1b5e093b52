#!/usr/bin/env python3
"""An orchestrator's round trip with ifad over its gRPC API (ifa.v1).

    python ifad_client.py --socket /run/ifad/ifad.sock [--pid PID] [--vmm qemu]

1. watches ifad's events on a background stream;
2. places a VM (Place) and prints where each vCPU runs and on what;
3. with --pid, attaches the VM to that running VMM (Attach): ifad pins its
   vCPU threads to their harts (the VMM must be started paused, e.g. QEMU -S
   with -accel kvm,riscv-aia=<the AIA mode the reply names>);
4. releases the VM (Release) and prints the events it saw.

A refusal is handled by its reason, not by parsing its message: every error
ifad returns carries a google.rpc.Status (grpc-status-details-bin) with an
ErrorInfo of domain "ifa.v1", plus RetryInfo where retrying later can help
and BadRequest for invalid arguments.

Exit status (as ifactl's): 0 done; 1 refused, or the daemon unreachable;
2 bad input (invalid argument, unknown VM, VM id or device in use).

Needs grpcio, grpcio-status and grpcio-tools (tests/python/requirements.txt).
The ifa.v1 stubs are generated from proto/ifa/v1/ifa.proto at run time
unless `ifa.v1.ifa_pb2` is importable already (gen_stubs.sh makes them).
"""

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

DOMAIN = "ifa.v1"
# Every unary call has a deadline: a daemon that hangs must not hang us.
CALL_TIMEOUT_S = 10.0
# TRY_AGAIN is retried this many times at most, waiting what RetryInfo says
# (capped, so a bad hint cannot stall us).
MAX_ATTEMPTS = 3
MAX_RETRY_DELAY_S = 5.0
# The watcher stops after this many events, or when the VM's release is seen.
MAX_EVENTS = 100
EVENT_WAIT_S = 5.0

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 2


def default_socket():
    """Where ifad listens unless told otherwise (as ifactl finds it)."""
    if os.environ.get("IFAD_SOCKET"):
        return os.environ["IFAD_SOCKET"]
    if os.geteuid() == 0:
        return "/run/ifad/ifad.sock"
    if os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(os.environ["XDG_RUNTIME_DIR"], "ifad", "ifad.sock")
    return f"/tmp/ifad-{os.getuid()}/ifad.sock"


def load_stubs(proto_root=None):
    """Returns (ifa_pb2, ifa_pb2_grpc): importable ones if any, else
    generated from the proto into a temp dir."""
    try:
        from ifa.v1 import ifa_pb2, ifa_pb2_grpc

        return ifa_pb2, ifa_pb2_grpc
    except ImportError:
        pass
    from grpc_tools import protoc

    root = Path(proto_root or Path(__file__).resolve().parents[2] / "proto")
    out = tempfile.mkdtemp(prefix="ifa-stubs-")
    rc = protoc.main([
        "grpc_tools.protoc",
        f"-I{root}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        str(root / "ifa" / "v1" / "ifa.proto"),
    ])
    if rc != 0:
        raise RuntimeError(f"protoc failed ({rc}) on {root}/ifa/v1/ifa.proto")
    sys.path.insert(0, out)
    from ifa.v1 import ifa_pb2, ifa_pb2_grpc

    return ifa_pb2, ifa_pb2_grpc


# --- the error model ---------------------------------------------------------

class Details:
    """What a failed call says beyond its code and message."""

    def __init__(self, err):
        self.code = err.code()
        self.message = err.details()
        self.reason = None  # ErrorInfo.reason, e.g. "NO_FREE_VSFILE"
        self.metadata = {}  # ErrorInfo.metadata: string values ("3")
        self.retry_delay = None  # seconds, from RetryInfo
        self.violations = []  # (field, description), from BadRequest
        try:
            status = rpc_status.from_call(err)  # None without grpc-status-details-bin
        except ValueError:  # details that contradict the call's own code
            status = None
        for detail in status.details if status else ():
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                if info.domain == DOMAIN:
                    self.reason = info.reason
                    self.metadata = dict(info.metadata)
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                self.retry_delay = retry.retry_delay.ToTimedelta().total_seconds()
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                self.violations += [(v.field, v.description) for v in bad.field_violations]

    def __str__(self):
        return f"{self.code.name} {self.reason or '(no reason)'}: {self.message}"


def call(method, request, what):
    """Calls a unary method; retries TRY_AGAIN after the delay the daemon
    asks for, MAX_ATTEMPTS times at most. Raises grpc.RpcError otherwise."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            return method(request, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as err:
            d = Details(err)
            if d.reason != "TRY_AGAIN" or d.retry_delay is None or attempt == MAX_ATTEMPTS:
                raise
            delay = min(max(d.retry_delay, 0.0), MAX_RETRY_DELAY_S)
            print(f"{what}: busy ({d.message}); retrying in {delay:.1f}s "
                  f"({attempt}/{MAX_ATTEMPTS})", file=sys.stderr)
            time.sleep(delay)
    raise AssertionError("unreachable")


def explain(err, what):
    """Prints one line on stderr for a failed call; returns the exit code."""
    if not isinstance(err, grpc.RpcError) or not hasattr(err, "code"):
        print(f"ifad_client: {what}: {err}", file=sys.stderr)
        return EXIT_REFUSED
    d = Details(err)
    m = d.metadata
    if d.reason == "NO_FREE_VSFILE":
        # Not worth retrying as it is: free VS-files first (release or
        # migrate VMs), place it elsewhere, or ask for fewer or burstable.
        print(f"ifad_client: {what} refused: needs {m.get('needed', '?')} VS-files, "
              f"{m.get('free', '?')} free ({d.message})", file=sys.stderr)
        return EXIT_REFUSED
    if d.code == grpc.StatusCode.INVALID_ARGUMENT:
        fields = "; ".join(why if why.startswith(f"{f}:") else f"{f}: {why}"
                           for f, why in d.violations) or d.message
        print(f"ifad_client: {what}: invalid argument: {fields}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if d.reason in ("VM_NOT_FOUND", "VM_EXISTS", "DEVICE_IN_USE"):
        print(f"ifad_client: {what}: {d.reason}: {d.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if d.code == grpc.StatusCode.UNAVAILABLE and d.reason is None:
        # No details at all: most likely nobody listens on the socket.
        print(f"ifad_client: {what}: ifad unreachable: {d.message}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"ifad_client: {what} failed: {d}", file=sys.stderr)
    return EXIT_REFUSED


# --- events ------------------------------------------------------------------

class Watcher:
    """ifad's event stream read on a background thread."""

    def __init__(self, stub, pb, vm):
        self.pb, self.vm = pb, vm
        self.events, self.error = [], None
        self.subscribed, self.done = threading.Event(), threading.Event()
        self._call = stub.Watch(pb.WatchRequest())  # unset `after`: from now on
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            # The daemon sends its headers once it has subscribed us: events
            # from then on are ours.
            self._call.initial_metadata()
            self.subscribed.set()
            for event in self._call:
                self.events.append(event)
                released = event.kind == self.pb.EVENT_KIND_RELEASED and event.vm == self.vm
                if released or len(self.events) >= MAX_EVENTS:
                    break
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:
                self.error = err
        finally:
            self.subscribed.set()
            self.done.set()

    def stop(self, wait_s=EVENT_WAIT_S):
        """Waits (bounded) for the VM's release to show up, then ends the
        stream."""
        self.done.wait(wait_s)
        self._call.cancel()  # ends the read at once
        self._thread.join(EVENT_WAIT_S)


# --- the round trip ----------------------------------------------------------

def print_vm(pb, vm):
    print(f"vm {vm.vm}: {pb.Class.Name(getattr(vm, 'class'))}, AIA mode {pb.AiaMode.Name(vm.aia_mode)}, "
          f"{pb.VmState.Name(vm.state)}")
    for v in vm.vcpus:
        backing = pb.Backing.Name(v.backing)
        line = f"line {v.vsfile_line} vsfile_hpa {v.vsfile_hpa:#x}" if not v.is_mrif else "MRIF"
        # Absent unless Place said the VMM's layout: ifad never guesses it.
        gpa = f"{v.guest_imsic_gpa:#x}" if v.HasField("guest_imsic_gpa") else "unknown"
        print(f"  vcpu {v.vcpu}: hart {v.hart} {backing} {line} "
              f"guest_imsic_gpa {gpa}" + (f" tid {v.tid}" if v.tid else ""))


def run(args):
    pb, pb_grpc = load_stubs(args.proto)
    klass = {"guaranteed": pb.CLASS_GUARANTEED, "burstable": pb.CLASS_BURSTABLE,
             "best-effort": pb.CLASS_BEST_EFFORT}[args.vm_class]
    # Default channel settings: nothing about the authority or anything else.
    with grpc.insecure_channel("unix:" + args.socket) as channel:
        stub = pb_grpc.AllocatorStub(channel)
        try:
            status = call(stub.GetStatus, pb.GetStatusRequest(), "status")
        except grpc.RpcError as err:
            return explain(err, "status")
        print(f"ifad {status.version} on a {status.host} host: {status.vsfiles_free} of "
              f"{status.vsfiles_total} VS-files free on {status.harts_online} online harts")

        watcher = Watcher(stub, pb, args.vm)
        if not watcher.subscribed.wait(EVENT_WAIT_S) or watcher.error:
            watcher.stop(0)
            return explain(watcher.error or RuntimeError("no answer"), "watch")

        rc, placed = place_attach_release(stub, pb, args, klass)

        # Only a VM placed (and so released) has a release event to wait for.
        watcher.stop(EVENT_WAIT_S if placed else 0)
        for e in watcher.events:
            print(f"event {e.seq}: {pb.EventKind.Name(e.kind)} {e.vm} {e.message}".rstrip())
        if watcher.error:
            return explain(watcher.error, "watch")
        return rc


def guest_imsic(pb, vmm):
    """Where the VMM puts the guest's IMSIC pages (for the irqbypass
    record); None leaves them unknown."""
    layout = pb.GuestImsicLayout
    return {
        None: None,
        "qemu": layout(qemu=layout.Qemu(sockets=1, guest_index_bits=0)),
        "cloud-hypervisor": layout(cloud_hypervisor=layout.CloudHypervisor()),
        "kvmtool": layout(kvmtool=layout.Kvmtool()),
    }[vmm]


def place_attach_release(stub, pb, args, klass):
    """Returns (exit code, whether the VM was placed)."""
    req = pb.PlaceRequest(vm=args.vm, vcpus=args.vcpus, harts=args.harts,
                          guest_imsic=guest_imsic(pb, args.vmm), **{"class": klass})
    try:
        placed = call(stub.Place, req, "place")
    except grpc.RpcError as err:
        return explain(err, f"place {args.vm}"), False
    print_vm(pb, placed.vm)
    for m in placed.demoted:
        print(f"  demoted {m.vm} vcpu {m.vcpu}: hart {m.from_hart} -> {m.to_hart} "
              f"{pb.Backing.Name(m.backing)}")

    rc = EXIT_OK
    if args.pid is not None:
        try:
            attached = call(stub.Attach, pb.AttachRequest(vm=args.vm, pid=args.pid), "attach")
            print_vm(pb, attached)
            # Resume the VMM once the VM is READY (not PENDING): GetVm, or
            # the Watch stream, says when.
        except grpc.RpcError as err:
            rc = explain(err, f"attach {args.vm} to pid {args.pid}")

    # A real orchestrator keeps the VM until it stops; this tour gives it back.
    try:
        released = call(stub.Release, pb.ReleaseRequest(vm=args.vm), "release")
        print(f"released {args.vm}: {released.vsfiles_freed} VS-files freed")
    except grpc.RpcError as err:
        return explain(err, f"release {args.vm}"), True
    return rc, True


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--socket", default=default_socket(), help="ifad's Unix socket")
    p.add_argument("--pid", type=int, help="a running VMM to attach the VM to")
    p.add_argument("--vm", default="example", help="VM id (default: %(default)s)")
    p.add_argument("--vcpus", type=int, default=2, help="default: %(default)s")
    p.add_argument("--class", dest="vm_class", default="guaranteed",
                   choices=["guaranteed", "burstable", "best-effort"])
    p.add_argument("--harts", type=lambda s: [int(h) for h in s.split(",")], default=[],
                   help="harts the VM may use, e.g. 0,1 (default: all)")
    p.add_argument("--vmm", choices=["qemu", "cloud-hypervisor", "kvmtool"],
                   help="the VMM, for its guest IMSIC layout (default: unknown)")
    p.add_argument("--proto", help="directory holding ifa/v1/ifa.proto "
                   "(default: the repository's proto/)")
    args = p.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

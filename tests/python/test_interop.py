"""A Python gRPC client (grpcio) against the real ifad, as orchestrators
other than ifactl talk to it: every :authority form a client library sends
on a Unix socket, server reflection, the rich error model
(google.rpc.Status in grpc-status-details-bin), and the example client in
examples/python/."""

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc
import pytest
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2 as refl_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_status import rpc_status

from conftest import CALL_TIMEOUT_S, EXAMPLE, PLAIN_AUTHORITY, pb, pb_grpc

ErrorInfo = error_details_pb2.ErrorInfo
RetryInfo = error_details_pb2.RetryInfo
BadRequest = error_details_pb2.BadRequest

GUARANTEED = {"class": pb.CLASS_GUARANTEED}  # `class` is a Python keyword


def refusal(call, *args):
    """Runs a call that must fail; returns (code, {detail type: [messages]})
    from the google.rpc.Status the daemon attached to it."""
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, timeout=CALL_TIMEOUT_S)
    err = caught.value
    # from_call also checks the Status's code and message are the call's.
    status = rpc_status.from_call(err)
    assert status is not None, (
        f"{err.code().name} ({err.details()}) has no grpc-status-details-bin")
    found = {}
    for detail in status.details:
        for kind in (ErrorInfo, RetryInfo, BadRequest):
            if detail.Is(kind.DESCRIPTOR):
                msg = kind()
                detail.Unpack(msg)
                found.setdefault(kind, []).append(msg)
    infos = found.get(ErrorInfo, [])
    assert len(infos) == 1, f"{err.code().name}: one ErrorInfo, got {status.details}"
    assert infos[0].domain == "ifa.v1", infos[0]
    return err.code(), found


def error_info(found):
    return found[ErrorInfo][0]


# --- :authority ----------------------------------------------------------------

def authority_forms(socket):
    """(channel target, options) as each client library connects."""
    return {
        # grpcio's default: the percent-encoded socket path.
        "grpcio-default": ("unix:" + socket, ()),
        # grpc-java (netty) sends the raw path.
        "raw-path-grpc-java": ("unix:" + socket, (("grpc.default_authority", socket),)),
        # grpc-go sends "localhost".
        "localhost-grpc-go": ("unix:" + socket, PLAIN_AUTHORITY),
        # The absolute URI form, default options.
        "unix-uri-absolute": ("unix://" + socket, ()),
    }


@pytest.mark.parametrize("form", list(authority_forms("/s")))
def test_authority_form_reaches_the_daemon(daemon, form):
    target, options = authority_forms(daemon.socket)[form]
    with daemon.channel(options, target=target) as ch:
        health = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        # Per service too, as Kubernetes' grpc probe and grpc-health-probe ask.
        health = health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service="ifa.v1.Allocator"), timeout=CALL_TIMEOUT_S)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        status = pb_grpc.AllocatorStub(ch).GetStatus(pb.GetStatusRequest(),
                                                    timeout=CALL_TIMEOUT_S)
        assert status.host == "simulated"
        assert (status.harts, status.vsfiles_total) == (8, 40)


# --- reflection ----------------------------------------------------------------

def reflect(channel, version, **request):
    """One ServerReflectionInfo exchange on grpc.reflection.<version>.
    grpcio-reflection ships client stubs for v1alpha only; v1's messages are
    the same on the wire (same fields, same numbers), so v1 is called by its
    method path with v1alpha's messages."""
    call = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=refl_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=refl_pb2.ServerReflectionResponse.FromString,
    )
    replies = list(call(iter([refl_pb2.ServerReflectionRequest(**request)]),
                        timeout=CALL_TIMEOUT_S))
    assert len(replies) == 1, replies
    reply = replies[0]
    assert not reply.HasField("error_response"), reply.error_response
    return reply


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_lists_the_services(daemon, version):
    with daemon.channel(PLAIN_AUTHORITY) as ch:
        reply = reflect(ch, version, list_services="")
    names = {s.name for s in reply.list_services_response.service}
    assert "ifa.v1.Allocator" in names, names


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_gives_the_allocator_file(daemon, version):
    with daemon.channel(PLAIN_AUTHORITY) as ch:
        reply = reflect(ch, version, file_containing_symbol="ifa.v1.Allocator")
    files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
             for raw in reply.file_descriptor_response.file_descriptor_proto]
    ifa = [f for f in files if f.package == "ifa.v1"]
    assert ifa, [f.name for f in files]
    services = {s.name: s for f in ifa for s in f.service}
    methods = {m.name: m for m in services["Allocator"].method}
    assert methods["Place"].input_type == ".ifa.v1.PlaceRequest"
    assert methods["Place"].output_type == ".ifa.v1.PlaceResponse"
    assert methods["Watch"].server_streaming
    # What the daemon serves is what proto/ifa/v1/ifa.proto says.
    assert set(methods) == {m.name for m in pb.DESCRIPTOR.services_by_name["Allocator"].methods}


def test_a_client_without_stubs_calls_through_reflection(daemon):
    """As grpcurl does: the descriptor from reflection, the message classes
    built from it, a call made with them."""
    with daemon.channel(PLAIN_AUTHORITY) as ch:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(ch))
        service = pool.FindServiceByName("ifa.v1.Allocator")
        place = service.FindMethodByName("Place")
        assert place.input_type.full_name == "ifa.v1.PlaceRequest"
        assert place.output_type.full_name == "ifa.v1.PlaceResponse"
        get_status = service.FindMethodByName("GetStatus")
        request = message_factory.GetMessageClass(get_status.input_type)
        reply = message_factory.GetMessageClass(get_status.output_type)
        call = ch.unary_unary(f"/{service.full_name}/{get_status.name}",
                              request_serializer=request.SerializeToString,
                              response_deserializer=reply.FromString)
        status = call(request(), timeout=CALL_TIMEOUT_S)
        assert status.host == "simulated"


# --- the error model -----------------------------------------------------------

def test_no_free_vsfile_says_what_was_needed_and_does_not_invite_retry(start_daemon):
    d = start_daemon("harts=2,files=1")
    with d.channel(PLAIN_AUTHORITY) as ch:
        stub = pb_grpc.AllocatorStub(ch)
        code, found = refusal(stub.Place, pb.PlaceRequest(vm="db", vcpus=3, **GUARANTEED))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        info = error_info(found)
        assert info.reason == "NO_FREE_VSFILE"
        assert info.metadata["needed"] == "3", dict(info.metadata)
        assert info.metadata["free"] == "2", dict(info.metadata)
        # Retrying the same request cannot help by itself.
        assert RetryInfo not in found, found[RetryInfo]
        # All or nothing: nothing was placed.
        assert not stub.ListVms(pb.ListVmsRequest(), timeout=CALL_TIMEOUT_S).vms
        # The same refusal from Advise, which never changes anything.
        code, found = refusal(stub.Advise, pb.PlaceRequest(vm="db", vcpus=3, **GUARANTEED))
        assert (code, error_info(found).reason) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED, "NO_FREE_VSFILE")


def test_invalid_argument_names_the_field(stub):
    code, found = refusal(stub.Place, pb.PlaceRequest(vm="a", vcpus=0, **GUARANTEED))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(found).reason == "INVALID_ARGUMENT"
    violations = [v for bad in found.get(BadRequest, []) for v in bad.field_violations]
    assert [v.field for v in violations] == ["vcpus"], violations
    assert violations[0].description
    assert RetryInfo not in found


def test_per_vcpu_irq_rate_hints_come_back_on_each_vcpu(stub):
    hint = pb.ExpectedIrqRate(per_vcpu=pb.ExpectedIrqRate.PerVcpu(rates=[0.0, 1500.0, 2.5e6]))
    placed = stub.Place(pb.PlaceRequest(vm="h", vcpus=3, expected_irq_rate=hint, **GUARANTEED),
                        timeout=CALL_TIMEOUT_S)
    assert [v.expected_irq_rate for v in placed.vm.vcpus] == [0.0, 1500.0, 2.5e6]
    # proto3 optional: a hint of 0 is present, no hint is absent.
    assert all(v.HasField("expected_irq_rate") for v in placed.vm.vcpus)
    plain = stub.Place(pb.PlaceRequest(vm="n", vcpus=1, **GUARANTEED), timeout=CALL_TIMEOUT_S)
    assert not plain.vm.vcpus[0].HasField("expected_irq_rate")
    got = stub.GetVm(pb.GetVmRequest(vm="h"), timeout=CALL_TIMEOUT_S)
    assert [v.expected_irq_rate for v in got.vcpus] == [0.0, 1500.0, 2.5e6]
    # What policy orders by: the hint until more is measured (the simulated
    # host's vCPUs take no interrupts unless told to).
    assert [v.irq_rate for v in got.vcpus] == [0.0, 1500.0, 2.5e6]
    assert plain.vm.vcpus[0].irq_rate == 0.0


@pytest.mark.parametrize("hint, field", [
    (dict(per_vcpu=pb.ExpectedIrqRate.PerVcpu(rates=[1.0, -2.0])),
     "expected_irq_rate.per_vcpu.rates"),
    (dict(per_vcpu=pb.ExpectedIrqRate.PerVcpu(rates=[1.0])), "expected_irq_rate.per_vcpu.rates"),
    (dict(each_vcpu=float("nan")), "expected_irq_rate.each_vcpu"),
    (dict(each_vcpu=1e7 + 1), "expected_irq_rate.each_vcpu"),
])
def test_a_bad_irq_rate_hint_names_its_field_and_places_nothing(stub, hint, field):
    request = pb.PlaceRequest(vm="bad", vcpus=2, expected_irq_rate=pb.ExpectedIrqRate(**hint),
                              **GUARANTEED)
    code, found = refusal(stub.Place, request)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(found).reason == "INVALID_ARGUMENT"
    violations = [v for bad in found.get(BadRequest, []) for v in bad.field_violations]
    assert [v.field for v in violations] == [field], violations
    assert stub.ListVms(pb.ListVmsRequest(), timeout=CALL_TIMEOUT_S).vms == []


def test_unknown_vm_is_not_found(stub):
    code, found = refusal(stub.GetVm, pb.GetVmRequest(vm="ghost"))
    assert code == grpc.StatusCode.NOT_FOUND
    assert error_info(found).reason == "VM_NOT_FOUND"
    code, found = refusal(stub.Release, pb.ReleaseRequest(vm="ghost"))
    assert (code, error_info(found).reason) == (grpc.StatusCode.NOT_FOUND, "VM_NOT_FOUND")


def test_a_taken_vm_id_is_already_exists(stub):
    stub.Place(pb.PlaceRequest(vm="a", vcpus=1, **GUARANTEED), timeout=CALL_TIMEOUT_S)
    code, found = refusal(stub.Place, pb.PlaceRequest(vm="a", vcpus=1, **GUARANTEED))
    assert (code, error_info(found).reason) == (grpc.StatusCode.ALREADY_EXISTS, "VM_EXISTS")


def test_a_change_on_the_read_only_socket_is_permission_denied(start_daemon):
    d = start_daemon("", "--socket-ro", "{dir}/ro.sock")
    with d.channel(PLAIN_AUTHORITY, target=f"unix:{d.dir}/ro.sock") as ch:
        stub = pb_grpc.AllocatorStub(ch)
        assert stub.GetStatus(pb.GetStatusRequest(), timeout=CALL_TIMEOUT_S).vms == 0
        code, found = refusal(stub.Place, pb.PlaceRequest(vm="a", vcpus=1, **GUARANTEED))
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert error_info(found).reason == "READ_ONLY_SOCKET"
        assert RetryInfo not in found
        assert not stub.ListVms(pb.ListVmsRequest(), timeout=CALL_TIMEOUT_S).vms


@pytest.mark.parametrize("body", [b"\xff\xff\xff", b"\x0a\x05ab"],
                         ids=["bad-varint", "truncated-field"])
def test_an_undecodable_body_is_invalid_argument(daemon, body):
    with daemon.channel(PLAIN_AUTHORITY) as ch:
        # Raw bytes in, raw bytes out: no serializer on either side.
        raw = ch.unary_unary("/ifa.v1.Allocator/Place",
                             request_serializer=None, response_deserializer=None)
        code, found = refusal(raw, body)
        assert code == grpc.StatusCode.INVALID_ARGUMENT  # the client's fault, not INTERNAL
        assert error_info(found).reason == "UNDECODABLE_REQUEST"
        assert RetryInfo not in found
        # The daemon goes on serving, and placed nothing.
        stub = pb_grpc.AllocatorStub(ch)
        assert not stub.ListVms(pb.ListVmsRequest(), timeout=CALL_TIMEOUT_S).vms


# --- the example client --------------------------------------------------------

def run_example(*args, timeout=60):
    """examples/python/ifad_client.py in a process of its own."""
    return subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_example_places_watches_and_releases(daemon):
    out = run_example("--socket", daemon.socket, "--vm", "web", "--vcpus", "3")
    assert out.returncode == 0, out
    assert "vm web: CLASS_GUARANTEED, AIA mode AIA_MODE_HWACCEL, VM_STATE_READY" in out.stdout
    assert out.stdout.count("BACKING_VSFILE") == 3, out.stdout
    assert "released web: 3 VS-files freed" in out.stdout
    # It saw its own VM placed and released on the Watch stream.
    assert "EVENT_KIND_PLACED web" in out.stdout, out.stdout
    assert "EVENT_KIND_RELEASED web" in out.stdout, out.stdout
    with daemon.channel(PLAIN_AUTHORITY) as ch:
        status = pb_grpc.AllocatorStub(ch).GetStatus(pb.GetStatusRequest(),
                                                    timeout=CALL_TIMEOUT_S)
    assert (status.vms, status.vsfiles_used) == (0, 0)


def test_example_reports_a_refusal_by_its_reason(start_daemon):
    d = start_daemon("harts=2,files=1")
    out = run_example("--socket", d.socket, "--vm", "db", "--vcpus", "3")
    assert out.returncode == 1, out
    assert "place db refused: needs 3 VS-files, 2 free" in out.stderr, out.stderr


def test_example_reports_the_field_of_bad_input(daemon):
    out = run_example("--socket", daemon.socket, "--vcpus", "0")
    assert out.returncode == 2, out
    assert "invalid argument: vcpus" in out.stderr, out.stderr


def test_example_attaches_a_running_vmm_and_the_kernel_shows_the_pinning(linux_daemon, fake_vmm):
    # This machine may have only 2 CPUs: keep the VM on harts 0 and 1.
    vmm = fake_vmm(2)
    out = run_example("--socket", linux_daemon.socket, "--vm", "a", "--vcpus", "2",
                      "--class", "burstable", "--harts", "0,1", "--vmm", "qemu",
                      "--pid", str(vmm.pid))
    assert out.returncode == 0, (out, linux_daemon.log())
    attached = re.findall(r"vcpu (\d+): hart (\d+) \S+ .* guest_imsic_gpa (\S+) tid (\d+)",
                          out.stdout)
    assert len(attached) == 2, out.stdout
    pinned = vmm.affinity()
    for vcpu, hart, gpa, _tid in attached:
        assert pinned[f"CPU {vcpu}/KVM"] == [int(hart)], (pinned, out.stdout)
        # QEMU virt, one socket, guest-index-bits 0: 4 KiB apart from 0x28000000.
        assert int(gpa, 16) == 0x2800_0000 + int(vcpu) * 0x1000
    assert "released a" in out.stdout, out.stdout


def test_example_gives_the_vm_back_when_attach_fails(daemon):
    # The simulated host has no VMM processes to attach.
    out = run_example("--socket", daemon.socket, "--vm", "a", "--pid", str(os.getpid()))
    assert out.returncode == 1, out
    assert "attach a to pid" in out.stderr, out.stderr
    assert "released a" in out.stdout, out.stdout


def test_example_reports_an_unreachable_daemon():
    with tempfile.TemporaryDirectory(prefix="ifad-py-") as dir:
        out = run_example("--socket", os.path.join(dir, "nobody.sock"), timeout=30)
    assert out.returncode == 1, out
    assert "unreachable" in out.stderr, out.stderr


class BusyAllocator(pb_grpc.AllocatorServicer):
    """A stand-in ifad that answers Place with TRY_AGAIN `busy` times."""

    def __init__(self, busy):
        self.busy, self.places = busy, 0
        self.released = threading.Event()

    def GetStatus(self, request, context):
        return pb.Status(host="stand-in", version="0", harts=1, harts_online=1,
                         vsfiles_total=1, vsfiles_free=1)

    def Watch(self, request, context):
        context.send_initial_metadata(())
        if self.released.wait(10):
            yield pb.Event(seq=1, kind=pb.EVENT_KIND_RELEASED, vm="a")

    def Place(self, request, context):
        self.places += 1
        if self.places <= self.busy:
            details = []
            for msg in (ErrorInfo(domain="ifa.v1", reason="TRY_AGAIN"),
                        RetryInfo(retry_delay={"nanos": 200_000_000})):
                details.append(any_pb2.Any())
                details[-1].Pack(msg)
            context.abort_with_status(rpc_status.to_status(status_pb2.Status(
                code=code_pb2.UNAVAILABLE, message="busy", details=details)))
        return pb.PlaceResponse(vm=pb.Vm(vm=request.vm, state=pb.VM_STATE_READY))

    def Release(self, request, context):
        self.released.set()
        return pb.ReleaseResponse()


@pytest.mark.parametrize("busy,rc", [(2, 0), (5, 1)], ids=["then-free", "stays-busy"])
def test_example_retries_try_again_a_bounded_number_of_times(busy, rc):
    allocator = BusyAllocator(busy)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_AllocatorServicer_to_server(allocator, server)
    with tempfile.TemporaryDirectory(prefix="ifad-py-") as dir:
        socket = os.path.join(dir, "busy.sock")
        server.add_insecure_port("unix:" + socket)
        server.start()
        try:
            started = time.monotonic()
            out = run_example("--socket", socket, "--vm", "a", timeout=30)
        finally:
            allocator.released.set()
            server.stop(grace=None)
    assert out.returncode == rc, out
    assert allocator.places == min(busy + 1, 3), "at most 3 attempts"
    assert out.stderr.count("retrying in 0.2s") == min(busy, 2), out.stderr
    if rc == 0:
        assert "released a" in out.stdout
    else:
        assert "TRY_AGAIN" in out.stderr, out.stderr
    assert time.monotonic() - started < 20

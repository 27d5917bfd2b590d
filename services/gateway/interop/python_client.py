#!/usr/bin/python3
"""An independent gRPC client (Debian's python3-grpcio) for the Museum gateway.

It learns the Museum API from the server itself: only the standard health and reflection protos are
compiled (grpc_tools, at run time); the museum.v1 message types are built from the file descriptors
that server reflection returns. Over a real socket it checks:
  1. grpc.health.v1 Check on the gateway reports SERVING;
  2. server reflection lists museum.v1.GatewayService (and the health service);
  3. one Generate streams progress events, then a PNG image.
Prints one JSON line with what it saw; exits non-zero on any failure.
Usage: python_client.py ADDRESS PROTO_DIR REFLECTION_PROTO_DIR
"""
import json
import os
import sys
import tempfile

import grpc
from grpc_tools import protoc


def compile_protos(out_dir, include_dirs, files):
    args = ["protoc"] + [f"-I{d}" for d in include_dirs]
    # grpc_tools ships google/protobuf/*.proto next to its module.
    args.append("-I" + os.path.join(os.path.dirname(protoc.__file__), "_proto"))
    args += [f"--python_out={out_dir}"] + files
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed for {files}")


def load_module(path, name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    address, proto_dir, refl_dir = sys.argv[1], sys.argv[2], sys.argv[3]
    out = tempfile.mkdtemp(prefix="museum-py-")
    compile_protos(out, [proto_dir], ["grpc/health/v1/health.proto"])
    compile_protos(out, [refl_dir], ["grpc/reflection/v1alpha/reflection.proto"])
    # Loaded by path: a `grpc.*` package name would be shadowed by grpcio itself.
    health_pb2 = load_module(os.path.join(out, "grpc/health/v1/health_pb2.py"), "museum_interop_health_pb2")
    reflection_pb2 = load_module(os.path.join(out, "grpc/reflection/v1alpha/reflection_pb2.py"), "museum_interop_reflection_pb2")
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # noqa: E402

    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=20)
    seen = {}

    check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=health_pb2.HealthCheckRequest.SerializeToString, response_deserializer=health_pb2.HealthCheckResponse.FromString)
    status = check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
    seen["health"] = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    if status != health_pb2.HealthCheckResponse.SERVING:
        raise SystemExit(f"gateway health is {seen['health']}")

    reflect = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString, response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    responses = reflect(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
    services = [s.name for r in responses for s in r.list_services_response.service]
    seen["services"] = sorted(services)
    if "museum.v1.GatewayService" not in services:
        raise SystemExit(f"reflection does not list museum.v1.GatewayService: {services}")

    # The gateway's messages, from the descriptors reflection serves.
    reply = list(reflect(iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol="museum.v1.GatewayService")]), timeout=10))
    files = [descriptor_pb2.FileDescriptorProto.FromString(b) for r in reply for b in r.file_descriptor_response.file_descriptor_proto]
    if not files:
        raise SystemExit("reflection returned no file descriptor for museum.v1.GatewayService")
    pool = descriptor_pool.DescriptorPool()
    pending = {f.name: f for f in files}
    while pending:  # add in dependency order
        ready = [f for f in pending.values() if all(d not in pending for d in f.dependency)]
        if not ready:
            raise SystemExit(f"unresolvable descriptor dependencies: {list(pending)}")
        for f in ready:
            pool.Add(f)
            del pending[f.name]
    factory = message_factory.MessageFactory(pool)
    Request = factory.GetPrototype(pool.FindMessageTypeByName("museum.v1.GenerateRequest"))
    Response = factory.GetPrototype(pool.FindMessageTypeByName("museum.v1.GenerateResponse"))
    method = pool.FindServiceByName("museum.v1.GatewayService").FindMethodByName("Generate")
    seen["generate_method_streams"] = method.full_name
    generate = channel.unary_stream("/museum.v1.GatewayService/Generate", request_serializer=Request.SerializeToString, response_deserializer=Response.FromString)
    progress, png = 0, b""
    for event in generate(Request(prompt="a red star", seed=7, steps=3), timeout=120):
        kind = event.WhichOneof("event")
        if kind == "progress":
            progress += 1
        elif kind == "image":
            png = event.image.png
    seen["progress_events"] = progress
    seen["png_bytes"] = len(png)
    if progress == 0 or not png.startswith(b"\x89PNG\r\n\x1a\n"):
        raise SystemExit(f"Generate gave {progress} progress events and {len(png)} PNG bytes")
    print(json.dumps(seen))


if __name__ == "__main__":
    main()

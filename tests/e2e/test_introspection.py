"""Operators' tools work without proto files: server reflection (what
`grpcurl -cacert ca.crt HOST:PORT list` uses) and the standard gRPC health
service (what Kubernetes probes call), on the client port only."""
from __future__ import annotations

import grpc
import pytest

from node.net.client import channel as client_channel
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

pytestmark = pytest.mark.e2e


def test_node_serves_reflection_and_health(net_factory):
    net = net_factory(nodes=4, chains=("demo",))
    net.start()
    net.wait_ready()
    with client_channel(net.specs[0].client, net.tls) as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
        assert {"govchain.v1.Client", "grpc.health.v1.Health"} <= services and "govchain.v1.Peer" not in services
        # reflection hands out full descriptors: a tool can build requests from them
        db = ProtoReflectionDescriptorDatabase(channel)
        method_names = [m.name for m in db.FindFileContainingSymbol("govchain.v1.Client").service[0].method]
        assert "SubmitStream" in method_names and "Status" in method_names
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "govchain.v1.Client"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as err:
            health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND

"""Client-side helpers shared by the CLI, scripts and tests."""
from __future__ import annotations

from collections.abc import Iterator

import grpc

from consensus.block import BlockHeader
from consensus.events import StableCheckpoint
from consensus.messages import CommittedBlock
from node.core import codec
from node.ledger.ledger import Ledger
from node.pb import client_pb2, client_pb2_grpc
from node.net.tls import Material

MESSAGE_BYTES_MAX = 64 << 20
OPTIONS = [("grpc.max_receive_message_length", MESSAGE_BYTES_MAX), ("grpc.max_send_message_length", MESSAGE_BYTES_MAX)]


def credentials(tls: Material | None, server_name: str | None = None) -> tuple[grpc.ChannelCredentials | None, list]:
    """Channel credentials (None: plaintext) and options for a client port.
    server_name: the name the node's certificate must carry, when the address
    dialled is not one of its names (a tunnel, a port-forward)."""
    if tls is None:
        return None, OPTIONS
    return tls.channel_credentials(), OPTIONS + ([("grpc.ssl_target_name_override", server_name)]
                                                 if server_name else [])


def channel(address: str, tls: Material | None = None, server_name: str | None = None) -> grpc.Channel:
    creds, options = credentials(tls, server_name)
    return (grpc.secure_channel(address, creds, options=options) if creds
            else grpc.insecure_channel(address, options=options))


def aio_channel(address: str, tls: Material | None = None) -> grpc.aio.Channel:
    creds, options = credentials(tls)
    return (grpc.aio.secure_channel(address, creds, options=options) if creds
            else grpc.aio.insecure_channel(address, options=options))


def stub(address: str, tls: Material | None = None, server_name: str | None = None) -> client_pb2_grpc.ClientStub:
    return client_pb2_grpc.ClientStub(channel(address, tls, server_name))


def blocks_over_grpc(client: client_pb2_grpc.ClientStub, address: str, chain_id: str, timeout_s: float = 10.0
                     ) -> Iterator[tuple[BlockHeader, CommittedBlock, StableCheckpoint | None]]:
    height = client.Status(client_pb2.StatusRequest(), timeout=timeout_s)
    tip = next((c.height for c in height.chains if c.chain_id == chain_id), None)
    if tip is None:
        raise LookupError(f"node {address} does not serve chain {chain_id!r}")
    for h in range(1, tip + 1):
        yield get_block(client, chain_id, h, timeout_s)


def get_block(client: client_pb2_grpc.ClientStub, chain_id: str, height: int, timeout_s: float
              ) -> tuple[BlockHeader, CommittedBlock, StableCheckpoint | None]:
    """One block with its header and, at a checkpoint height, its stable-checkpoint proof."""
    r = client.GetBlock(client_pb2.GetBlockRequest(chain_id=chain_id, height=height), timeout=timeout_s)
    checkpoint = codec.from_proto(r.checkpoint) if r.HasField("checkpoint") else None
    return codec.from_proto(r.header), codec.from_proto(r.block), checkpoint


def blocks_from_ledger(ledger: Ledger) -> Iterator[tuple[BlockHeader, CommittedBlock, StableCheckpoint | None]]:
    for h in range(1, ledger.height + 1):
        yield ledger.header(h), ledger.block(h), ledger.stable_checkpoint(h)

from node.pb import consensus_pb2 as _consensus_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PeerEnvelope(_message.Message):
    __slots__ = ("chain_id", "message")
    CHAIN_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    chain_id: str
    message: _consensus_pb2.ConsensusMessage
    def __init__(self, chain_id: _Optional[str] = ..., message: _Optional[_Union[_consensus_pb2.ConsensusMessage, _Mapping]] = ...) -> None: ...

class DeliverAck(_message.Message):
    __slots__ = ("messages_received",)
    MESSAGES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    messages_received: int
    def __init__(self, messages_received: _Optional[int] = ...) -> None: ...

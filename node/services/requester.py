"""The requester's side of a verification query, shared by `govchain
verify-query` (node/tools/verify_cli.py) and the case driver
(node/services/cases.py): build and sign the request, send it, and check the
reply before trusting anything in it (docs/design.md, "Verification
queries").

`ask` is the whole round trip: the answer, opened and checked against its
commitment and the attestation under the provider's catalog key, and the
authz log entry read from the requester's own node.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass


class NotVerified(Exception):
    """The provider's reply does not check out (`digest`: the request's)."""

    digest = b""


def _catalog_json(client, key: bytes, timeout: float):
    from node.pb import client_pb2

    reply = client.QueryState(client_pb2.QueryStateRequest(chain_id="catalog", contract="catalog", key=key),
                              timeout=timeout)
    return json.loads(reply.value) if reply.found else None


def provider_key(client, provider: str, timeout: float) -> bytes:
    """The provider department's one active catalog key with role provider."""
    keys = _catalog_json(client, f"deptkeys/{provider}".encode(), timeout) or []
    found = [k for k in keys if "provider" in (_catalog_json(client, f"key/{k}".encode(), timeout) or {})
             .get("roles", ())]
    if len(found) != 1:
        raise ValueError(f"department {provider} has {len(found)} active keys with role provider in the catalog; "
                         f"pass --provider-key HEX")
    return bytes.fromhex(found[0])


def build_request(*, key, department: str, provider: str, provider_key: bytes, item: str, fields, predicate,
                  tag: bytes, id_number: str, oprf_output: bytes, consent: str | None, agreement: str | None,
                  purpose: str, case_id: str, reply_public: bytes, time_ms: int | None = None):
    """(SignedVerifyRequest, its digest)."""
    from node.core import attest
    from node.pb import verify_pb2
    from node.core.crypto import seal_to_signing_key

    subject = verify_pb2.SealedSubject(id_number=id_number, oprf_output=oprf_output).SerializeToString()
    req = verify_pb2.VerifyRequest(
        item=item, fields=fields or [], predicate=predicate or "", tag=tag,
        sealed_subject=seal_to_signing_key(provider_key, subject), consent_id=consent or "",
        agreement_id=agreement or "", purpose=purpose, case_id=case_id, nonce=os.urandom(24),
        time_ms=time_ms or int(time.time() * 1000), requester=department, requester_key=bytes(key.verify_key),
        provider=provider, provider_key=provider_key, reply_key=reply_public)
    raw = req.SerializeToString(deterministic=True)
    digest = attest.request_digest(raw)
    signature = key.sign(attest.request_signing_bytes(digest)).signature
    return verify_pb2.SignedVerifyRequest(request=raw, signature=signature), digest


def open_checked(reply, *, digest: bytes, provider_key: bytes, reply_private) -> tuple[dict, bytes]:
    """(answer, salt), after checking the attestation and the commitment. Raises NotVerified."""
    from nacl.exceptions import CryptoError

    from node.core import attest
    from node.services.verify import open_reply

    if reply.request_digest != digest:
        raise NotVerified("the reply is for another request digest")
    if reply.provider_key != provider_key:
        raise NotVerified("the reply is signed by another key than the provider's catalog key")
    if not attest.attestation_holds(provider_key, digest, reply.answer_commitment, "PERMIT", reply.attestation):
        raise NotVerified("the attestation does not verify with the provider's catalog key") from None
    try:
        opened = json.loads(open_reply(reply_private, reply.sealed_answer))
        answer, salt = opened["answer"], bytes.fromhex(opened["salt"])
        commitment = attest.answer_commitment(salt, answer)
    except (CryptoError, ValueError, KeyError, TypeError):
        raise NotVerified("the sealed answer does not open into {answer, salt} with the reply key") from None
    if commitment != reply.answer_commitment:
        raise NotVerified("the answer does not match its commitment")
    return answer, salt


def check_reply(reply, *, digest: bytes, provider_key: bytes, reply_private) -> dict:
    """The answer, after checking the attestation and the commitment. Raises NotVerified."""
    return open_checked(reply, digest=digest, provider_key=provider_key, reply_private=reply_private)[0]


def check_log(client, reply, *, digest: bytes, timeout: float) -> dict:
    """The committed log entry this reply cites. Raises NotVerified."""
    from node.pb import client_pb2

    deadline = time.monotonic() + timeout
    while True:  # the node read may be a block behind the provider's: wait for it, up to the timeout
        read = client.Query(client_pb2.QueryRequest(
            chain_id="authz", contract="authz", method="access",
            args=json.dumps({"request_digest": digest.hex()}).encode()), timeout=timeout)
        found = json.loads(read.result)
        entry = found.get("entry") if isinstance(found, dict) else None
        if entry is not None:
            break
        if read.height >= reply.log_height or time.monotonic() > deadline:
            raise NotVerified(f"the authz chain has no log entry for this request (read at height {read.height})")
        time.sleep(0.1)
    expected = {"decision": "PERMIT", "answer_commitment": reply.answer_commitment.hex(),
                "attestation": reply.attestation.hex()}
    for name, value in expected.items():
        if entry.get(name) != value:
            raise NotVerified(f"the authz log entry's {name} is not the reply's")
    tx = client.GetTransaction(client_pb2.GetTransactionRequest(chain_id="authz", tx_id=reply.log_tx_id),
                               timeout=timeout)
    if tx.receipt.status != client_pb2.Receipt.OK or tx.receipt.height != reply.log_height:
        raise NotVerified(f"log transaction {reply.log_tx_id.hex()} is not committed OK at height {reply.log_height}")
    if json.loads(tx.tx.payload).get("request_digest") != digest.hex():
        raise NotVerified("the log transaction logs another request")
    return entry


@dataclass(frozen=True)
class Verified:
    """A checked answer and what proves it: the opening (answer, salt) of the
    reply's commitment, the reply and the request digest."""

    answer: dict
    salt: bytes
    reply: object  # verify_pb2.VerifyReply
    digest: bytes


def ask(verifier, node, *, provider_key: bytes, timeout: float, **request) -> Verified:
    """One verification query: `verifier` a VerificationStub of the provider's
    node, `node` a client stub of the requester's own node (for the log
    entry), `request` build_request's keywords but reply_public. Raises
    NotVerified, or grpc.RpcError for a refusal."""
    from nacl.public import PrivateKey

    reply_private = PrivateKey.generate()
    signed, digest = build_request(provider_key=provider_key, reply_public=bytes(reply_private.public_key),
                                   **request)
    reply = verifier.Verify(signed, timeout=timeout)
    try:
        answer, salt = open_checked(reply, digest=digest, provider_key=provider_key, reply_private=reply_private)
        check_log(node, reply, digest=digest, timeout=timeout)
    except NotVerified as exc:
        exc.digest = digest
        raise
    return Verified(answer, salt, reply, digest)

"""The node's signature cache never vouches for other bytes under a known id."""
from nacl.signing import SigningKey

from consensus import messages as m
from node import codec
from node.chain import _verify_requests
from node.tx import sign_transaction


def test_chain_verified_cache_key_binds_the_body():
    tx = sign_transaction(SigningKey(b"\x05" * 32), chain_id="demo", nonce=1, contract="kv", method="put",
                          payload=b'{"key": "a", "value": "1"}')
    real = codec.request_from_tx(tx)
    swapped = m.Request(id=real.id, body=b"garbage")
    assert _verify_requests([real]) == [m.tx_leaf(real)]
    assert m.tx_leaf(swapped) != m.tx_leaf(real)  # a cache hit for `real` is a miss for `swapped`
    assert _verify_requests([swapped]) == []

"""Generated protobuf and gRPC modules for proto/govchain/v1/. DO NOT EDIT.

Regenerate with `python scripts/gen_proto.py`; CI runs `--check`. Only
node/core/codec.py (and the gRPC edges) may import these modules: the rest of the
node works with the domain types in consensus/ and node/core/tx.py.
"""

"""The catalog's view of signers, for contracts (docs/design.md, "Identities
and permissions"): node/identity/signers.py, where the platform's permission
checks find it too. Not a contract (node.contracts.NOT_CONTRACTS)."""
from node.identity.signers import (  # noqa: F401  (re-exported)
    ACTIVE, ANYONE, CATALOG_CHAIN, CATALOG_CONTRACT, GOVERNANCE, REVOKED, ROLES, Read, SignerRecord, check_role,
    key_state_key, lookup_signer, permission_refusal, short,
)

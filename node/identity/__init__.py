"""Identities: citizens' subject tags from the identity service (oprf.py,
docs/design.md, "Subject tags (OPRF)") and departments' keys as the catalog
registers them (signers.py, docs/design.md, "Identities and permissions").
"""

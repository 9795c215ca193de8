"""The identity service's pieces (public security department): subject tags so far.

See docs/design.md, "Subject tags (OPRF)".
"""

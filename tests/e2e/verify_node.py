"""`python tests/e2e/verify_node.py node run --config ...`: a node process that
runs the test stand-in for the authz contract (tests/authz_standin_contract.py)
in place of the real authz v1 (node/contracts/authz.py, which enforces consents
the stand-in's tests do not grant), for tests/e2e/test_verify.py."""
import sys

from node import contracts
from node.tools.cli import main
from tests.authz_standin_contract import CONTRACT, NAME, VERSION

contracts.available()[(NAME, VERSION)] = CONTRACT  # the cached table every registry_for reads
sys.exit(main())

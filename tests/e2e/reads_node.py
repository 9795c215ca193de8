"""`python tests/e2e/reads_node.py node run --config ...`: a node process that
also runs the test-only contract tests/readtest_contract.py (readtest 1), for
tests/e2e/test_reads.py. Production nodes never have it."""
import sys

from node import contracts
from node.tools.cli import main
from tests.readtest_contract import CONTRACT, NAME, VERSION

contracts.available()[(NAME, VERSION)] = CONTRACT  # the cached table every registry_for reads
sys.exit(main())

"""Re-run a script under the repository's .venv (made by `scripts/dev`) when
it was started with another Python: `scripts/cluster status` then works from
a shell whose python3 lacks the dependencies."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def use_repo_venv() -> None:
    venv = Path(__file__).resolve().parents[1] / ".venv"
    python = venv / "bin" / "python"
    if python.exists() and Path(sys.prefix).resolve() != venv.resolve():
        os.execv(str(python), [str(python), *sys.argv])

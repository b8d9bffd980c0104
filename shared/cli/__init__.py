"""``keyguard``: the operator's command line (console script declared in ``pyproject.toml``).

It reads the same ``KEYGUARD_*`` / ``AzureWebJobsStorage*`` settings as the Function App —
from the environment, or from ``--settings FILE`` (a ``local.settings.json``, a flat JSON
object, or ``KEY=VALUE`` lines; the file's values win) — and signs in with
``DefaultAzureCredential``: ``az login``, environment credentials or a managed identity in
Azure, the local Azure's identity endpoint on the offline stack. Subcommands (each with
``--help``): ``report``, ``restore-plan``, ``ade-report``, ``dead-letters``, ``replay``,
``quarantine``, ``sweep --dry-run``. Results go to stdout (text or JSON), progress and
errors to stderr.

Exit codes: :data:`OK` (0), :data:`FINDINGS` (1: something is not restorable / needs action /
is not migrated), :data:`USAGE` (2: bad arguments, invalid settings, unknown VM or point),
:data:`AZURE` (3: Azure or Keyguard's storage could not be read or written).
"""

from __future__ import annotations

from typing import Final

OK: Final = 0
FINDINGS: Final = 1
USAGE: Final = 2
AZURE: Final = 3

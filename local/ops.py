"""``python -m local.ops``: the old name of the ``keyguard`` command (``shared.cli``), kept as
an alias so existing notes and scripts keep working. Prefer ``keyguard`` (installed by
``./dev setup``) or ``python -m shared.cli``."""

from __future__ import annotations

import sys

from shared.cli.main import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())

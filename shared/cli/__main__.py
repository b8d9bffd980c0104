"""``python -m shared.cli`` — the ``keyguard`` command without the console script."""

import sys

from shared.cli.main import main

sys.exit(main())

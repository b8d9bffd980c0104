"""Keyguard's domain: events, configuration, Azure clients, access, pinning, backups,
inventory, the work pipeline (queue, ledger, retries) and alerts.

Nothing here imports an Azure SDK module at import time: SDK imports live inside the
functions that need them, so a cold start pays only for what an invocation uses.
"""

"""Names of the storage resources, alert types and functions Keyguard uses.

One source of truth: ``function_app.py`` binds to these, ``infra/`` creates them (a test
checks the Bicep against this module), and the tests and the local host read them from here.
"""

from __future__ import annotations

# Storage queues (lower-case, hyphens). The Functions host moves a message that failed
# maxDequeueCount times to "<queue>-poison"; the worker drains that into the dead-letter table.
WORK_QUEUE = "keyguard-work"
WORK_POISON_QUEUE = f"{WORK_QUEUE}-poison"

# Tables (alphanumeric only).
LEDGER_TABLE = "KeyguardLedger"
DEAD_LETTER_TABLE = "KeyguardDeadLetters"
QUARANTINE_TABLE = "KeyguardQuarantine"
INVENTORY_TABLE = "KeyguardInventory"
ALERTS_TABLE = "KeyguardAlerts"
BACKUP_BUDGET_TABLE = "KeyguardBackups"

ALL_TABLES = (
    LEDGER_TABLE,
    DEAD_LETTER_TABLE,
    QUARANTINE_TABLE,
    INVENTORY_TABLE,
    ALERTS_TABLE,
    BACKUP_BUDGET_TABLE,
)
ALL_QUEUES = (WORK_QUEUE, WORK_POISON_QUEUE)

# Blob containers.
EVENTGRID_DEADLETTER_CONTAINER = "keyguard-eventgrid-deadletter"
ESCROW_CONTAINER = "keyguard-escrow"
ALL_CONTAINERS = (EVENTGRID_DEADLETTER_CONTAINER, ESCROW_CONTAINER)

# Function names (Event Grid subscriptions target these by name).
FN_KEYVAULT_EVENTS = "keyvault_events"
FN_ARM_EVENTS = "arm_events"
FN_WORKER = "worker"
FN_POISON_DRAIN = "poison_drain"
FN_SWEEP = "sweep"
FN_WATCH = "watch"
FN_REPLAY = "replay"
FN_REPORT = "restorability_report"
FN_RESTORE_PLAN = "restore_plan"

# Prefix of the CloudEvents types Keyguard publishes to the alert topic.
ALERT_TYPE_PREFIX = "Keyguard."

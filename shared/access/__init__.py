"""Azure Backup's access to Key Vault: verify it, report it exactly, repair it when allowed.

Modules: ``permissions`` (required sets, case-insensitive matching), ``policies`` and
``rbac`` (the two permission models), ``hygiene`` (soft delete, purge protection),
``report`` (the :class:`~shared.access.report.AccessReport`), ``verify`` (one verification),
``remediate`` (additive repairs, re-verified), ``alerting`` (the alerts and their ``az``
fixes), ``ports`` (our reader/writer protocols) and ``readers`` (their SDK implementation).
"""

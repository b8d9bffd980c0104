"""On-demand backups after key rollover and encryption changes (issue 6).

* :mod:`~shared.backups.impact` — which protected VMs an object rotation affects.
* :mod:`~shared.backups.budget` — the daily on-demand budget per VM and running jobs.
* :mod:`~shared.backups.trigger` — the trigger call and its polling headers.
* :mod:`~shared.backups.track` — polling the operation and the job, recording the point.
* :mod:`~shared.backups.errors` — what a trigger error or a failed job means for Keyguard.
* :mod:`~shared.backups.items` — the per-VM BACKUP and TRACK work items.
* :mod:`~shared.backups.notices` — the alerts and follow-up items the flow raises.

The flow, its choices and the benchmark figures: ``docs/backups.md``.

The actions are :mod:`shared.actions.backup` and :mod:`shared.actions.track_backup`.
"""

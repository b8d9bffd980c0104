"""Keyguard's Azure Functions app: wiring only.

Each function hands its trigger input to a handler in ``handlers/``; the handlers call the
domain code in ``shared/``. Cold start: nothing here imports an Azure SDK module, and each
function imports its handler when first invoked, so a cold start pays only for the trigger
that woke it (``bench/cold_start.py`` measures it).

Settings are validated when the app loads, so an invalid or missing setting fails the
start-up with an error naming it (see ``shared.config``).
"""

from __future__ import annotations

import azure.functions as func

from shared import logs, names
from shared.config import get_settings

logs.configure()
get_settings()  # fail fast: raises ConfigError naming the first bad setting

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.function_name(names.FN_KEYVAULT_EVENTS)
@app.event_grid_trigger(arg_name="event")
def keyvault_event(event: str) -> None:
    """Key Vault system-topic events (new versions, expiry, access policy changes); bound as
    ``str`` so the event's JSON text reaches Keyguard's parser (see ``handlers.events``)."""
    from handlers import events

    events.handle(event)


@app.function_name(names.FN_ARM_EVENTS)
@app.event_grid_trigger(arg_name="event")
def arm_event(event: str) -> None:
    """Subscription system-topic events (VM, disk, DES, vault and role assignment writes);
    bound as ``str``, like ``keyvault_event``."""
    from handlers import events

    events.handle(event)


@app.function_name(names.FN_WORKER)
@app.queue_trigger(arg_name="msg", queue_name=names.WORK_QUEUE, connection="AzureWebJobsStorage")
def work(msg: func.QueueMessage) -> None:
    """Runs one step of one work item."""
    from handlers import worker

    worker.handle(msg)


@app.function_name(names.FN_POISON_DRAIN)
@app.queue_trigger(
    arg_name="msg", queue_name=names.WORK_POISON_QUEUE, connection="AzureWebJobsStorage"
)
def poison(msg: func.QueueMessage) -> None:
    """Moves messages the host gave up on into the dead-letter table (never dropped)."""
    from handlers import worker

    worker.handle_poison(msg)


@app.function_name(names.FN_SWEEP)
@app.timer_trigger(arg_name="timer", schedule="%KEYGUARD_SWEEP_SCHEDULE%", run_on_startup=False)
def sweep_timer(timer: func.TimerRequest) -> None:
    """Periodic sweep: re-plans verification, pinning and inventory for the whole scope."""
    from handlers import sweep

    sweep.handle(timer)


@app.function_name(names.FN_WATCH)
@app.timer_trigger(arg_name="timer", schedule=get_settings().watch_schedule, run_on_startup=False)
def watch_timer(timer: func.TimerRequest) -> None:
    """The watch (default every 15 minutes, ``KEYGUARD_WATCH_SCHEDULE``, read here so it has
    a default): re-pins only the keys and secrets the inventory says are needed."""
    from handlers import watch

    watch.handle(timer)


@app.function_name(names.FN_REPLAY)
@app.route(route="replay", methods=["POST"])
def replay(req: func.HttpRequest) -> func.HttpResponse:
    """Re-enqueues dead-lettered work and ingests Event Grid dead-letter blobs."""
    from handlers import http_ops

    return http_ops.replay(req)


@app.function_name(names.FN_REPORT)
@app.route(route="report", methods=["GET"])
def restorability_report(req: func.HttpRequest) -> func.HttpResponse:
    """The restorability report: per protected VM and recovery point, can it be restored."""
    from handlers import report

    return report.restorability_report(req)


@app.function_name(names.FN_RESTORE_PLAN)
@app.route(route="restore-plan", methods=["GET"])
def restore_plan(req: func.HttpRequest) -> func.HttpResponse:
    """The restore plan of one recovery point: what to make usable in Key Vault first, then
    the restore-disks command (``?vm=NAME&point=ID&format=json|text``)."""
    from handlers import restore_plan as plan

    return plan.restore_plan(req)

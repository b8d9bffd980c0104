"""A tiny Functions app with one function per trigger type, for the local host's tests.

Each function appends what it received as one JSON line to
``$SAMPLE_RECORD_DIR/<function>.jsonl``, so a test can check the exact input whether the host
runs in this process or in a subprocess. Failures are asked for through the input:

* Event Grid: ``data.fail`` true → raises.
* Queue: a body starting with ``fail`` → raises (every attempt); ``hang`` → the first
  attempt sleeps a minute (for killing the host mid-invocation).
* HTTP: ``/api/hello/boom`` → raises.
* Timer: schedule from the app setting ``SAMPLE_TIMER_SCHEDULE``; ``startup_tick`` runs
  once at host start.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
OUTPUT_QUEUE = "sample-out"
WORK_QUEUE = "sample-work"


def record(function: str, entry: dict[str, Any]) -> None:
    """Append one JSON line for ``function`` (single write: lines do not interleave)."""
    folder = Path(os.environ["SAMPLE_RECORD_DIR"])
    with open(folder / f"{function}.jsonl", "a", encoding="utf-8") as file:
        file.write(json.dumps(entry) + "\n")


@app.function_name("eg_record")
@app.event_grid_trigger(arg_name="event")
@app.queue_output(arg_name="out", queue_name=OUTPUT_QUEUE, connection="AzureWebJobsStorage")
def eg_record(event: func.EventGridEvent, out: func.Out[str]) -> None:
    """Records the event; forwards its id to the output queue; raises on ``data.fail``."""
    data = event.get_json()
    if isinstance(event, func.EventGridEvent):
        entry = {
            "class": "EventGridEvent",
            "id": event.id,
            "topic": event.topic,
            "subject": event.subject,
            "event_type": event.event_type,
            "event_time": event.event_time.isoformat() if event.event_time else None,
            "data_version": event.data_version,
            "data": data,
        }
    else:
        entry = {
            "class": type(event).__name__,
            "id": event.id,
            "type": event.type,
            "source": event.source,
            "data": data,
        }
    record("eg_record", entry)
    if isinstance(data, dict) and data.get("fail"):
        raise RuntimeError("asked to fail")
    out.set(json.dumps({"forwarded": event.id}))


@app.function_name("queue_work")
@app.queue_trigger(arg_name="msg", queue_name=WORK_QUEUE, connection="AzureWebJobsStorage")
def queue_work(msg: func.QueueMessage) -> None:
    """Records the message; raises when its body starts with ``fail``."""
    body = msg.get_body().decode()
    record(
        "queue_work",
        {
            "id": msg.id,
            "body": body,
            "dequeue_count": msg.dequeue_count,
            "has_times": msg.insertion_time is not None and msg.expiration_time is not None,
            "pop_receipt": bool(msg.pop_receipt),
            "at": time.time(),
        },
    )
    if body.startswith("fail"):
        raise RuntimeError("asked to fail")
    if body.startswith("hang") and msg.dequeue_count == 1:
        time.sleep(60)  # a chaos test kills the host meanwhile


@app.function_name("timer_tick")
@app.timer_trigger(arg_name="timer", schedule="%SAMPLE_TIMER_SCHEDULE%", run_on_startup=False)
def timer_tick(timer: func.TimerRequest) -> None:
    """Records each tick."""
    record("timer_tick", {"past_due": timer.past_due, "status": timer.schedule_status})


@app.function_name("startup_tick")
@app.timer_trigger(arg_name="timer", schedule="0 0 0 1 1 *", run_on_startup=True)
def startup_tick(timer: func.TimerRequest) -> None:
    """Yearly, but runs once at host start (``runOnStartup``)."""
    record("startup_tick", {"past_due": timer.past_due, "status": timer.schedule_status})


@app.function_name("http_hello")
@app.route(route="hello/{name}", methods=["GET", "POST"])
def http_hello(req: func.HttpRequest) -> func.HttpResponse:
    """Greets ``name``; function-level auth (the app default). ``boom`` raises."""
    if req.route_params["name"] == "boom":
        raise RuntimeError("asked to fail")
    return func.HttpResponse(
        json.dumps(
            {
                "hello": req.route_params["name"],
                "q": req.params.get("q"),
                "body": req.get_body().decode(),
            }
        ),
        status_code=201,
        mimetype="application/json",
    )


@app.function_name("http_open")
@app.route(route="open", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def http_open(req: func.HttpRequest) -> func.HttpResponse:
    """Anonymous: no key needed."""
    return func.HttpResponse("open")

"""A one-function app for the local host's pacing test: a queue trigger that takes a while.

Each invocation appends ``{"body", "start", "end"}`` (wall-clock seconds) as one JSON line to
``$SLOW_RECORD_DIR/slow_work.jsonl``, then sleeps for the seconds its body names (``"1.5"``).
The test reads the gaps between one invocation's end and the next one's start: that is the
time the host took to fetch the next message while it was busy.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import azure.functions as func

app = func.FunctionApp()
SLOW_QUEUE = "slow-work"


@app.function_name("slow_work")
@app.queue_trigger(arg_name="msg", queue_name=SLOW_QUEUE, connection="AzureWebJobsStorage")
def slow_work(msg: func.QueueMessage) -> None:
    """Sleeps for the seconds in the body, then records when it ran."""
    body = msg.get_body().decode()
    start = time.time()
    time.sleep(float(body))  # the work
    line = json.dumps({"body": body, "start": start, "end": time.time()})
    with open(Path(os.environ["SLOW_RECORD_DIR"]) / "slow_work.jsonl", "a", encoding="utf-8") as f:
        f.write(line + "\n")

"""Queue triggers: poll Azurite and run functions as the Functions queue listener does.

Per queue function, one poller thread and a thread pool of ``batchSize`` + threshold workers
(host.json ``extensions.queues``):

* Fetch up to ``batchSize`` messages whenever the messages in flight drop to
  ``newBatchThreshold`` (default ``batchSize/2``). Received messages stay invisible for
  ``functionTimeout`` — a killed host's messages reappear after that. (The real host leases
  for 10 minutes and renews while the function runs; a fixed lease of the function timeout
  behaves the same for any function that keeps to its timeout, and lets chaos tests use
  short host.json timeouts.)
* Idle polling backs off exponentially from 100 ms to ``maxPollingInterval``; any message
  resets it.
* Success deletes the message. A failure leaves it, visible again after
  ``visibilityTimeout``; after ``maxDequeueCount`` failed attempts the message (its stored
  text, unchanged) moves to ``<queue>-poison``. A message received with a dequeue count
  above the limit (a host died mid-run) goes straight to the poison queue.
* ``messageEncoding`` ``base64`` (default): bodies are base64-decoded; a body that is not
  base64 fails the attempt, like any other error.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from local.host.app_loader import FunctionSpec, Invoker
from local.host.config import HostConfig, resolve_app_settings
from local.host.storage import ensure_queue, queue_client

if TYPE_CHECKING:
    from azure.storage.queue import QueueMessage as StorageMessage

log = logging.getLogger("keyguard.localhost")

MIN_POLL_SECONDS = 0.1


def next_poll_delay(current: float, cap: float) -> float:
    """The idle polling delay after ``current``: doubled, at most ``cap`` (host.json)."""
    return min(max(current, MIN_POLL_SECONDS) * 2, max(cap, MIN_POLL_SECONDS))


class QueueListener:
    """Drives one queue-triggered function. Call :meth:`start`, later :meth:`stop`."""

    def __init__(
        self, spec: FunctionSpec, invoker: Invoker, config: HostConfig, env: Mapping[str, str]
    ) -> None:
        self.spec = spec
        self._invoker = invoker
        self._settings = config.queues
        self._lease = max(1, int(config.function_timeout))
        self.queue_name = resolve_app_settings(str(spec.trigger["queueName"]), env)
        connection = spec.trigger.get("connection")
        self._client = queue_client(env, connection, self.queue_name)
        self._poison = queue_client(env, connection, f"{self.queue_name}-poison")
        self._stop = threading.Event()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # notified when in-flight drops
        self._pool = ThreadPoolExecutor(
            max_workers=self._settings.batch_size + self._settings.threshold,
            thread_name_prefix=f"queue-{spec.name}",
        )
        self._thread = threading.Thread(target=self._poll, name=f"poll-{spec.name}", daemon=True)

    def start(self) -> None:
        """Create the queue if needed and start polling."""
        ensure_queue(self._client)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling and wait for running invocations (up to ``timeout`` for the poller)."""
        self._stop.set()
        with self._room:
            self._room.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _poll(self) -> None:
        delay = MIN_POLL_SECONDS
        while not self._stop.is_set():
            with self._room:
                if self._in_flight > self._settings.threshold:
                    # Busy, not idle: fetch as soon as a slot frees (timeout: see stop()).
                    self._room.wait(timeout=1.0)
                    continue
            got = 0
            try:
                got = self._fetch()
            except Exception as exc:  # storage hiccup: log, back off, keep polling
                log.warning("queue %s: receive failed: %s", self.queue_name, exc)
            if got:
                delay = MIN_POLL_SECONDS
                continue
            self._stop.wait(delay)
            delay = next_poll_delay(delay, self._settings.max_polling_interval)

    def _fetch(self) -> int:
        batch = self._settings.batch_size
        messages = list(
            self._client.receive_messages(
                messages_per_page=batch, max_messages=batch, visibility_timeout=self._lease
            )
        )
        for message in messages:
            with self._lock:
                self._in_flight += 1
            self._pool.submit(self._process, message)
        return len(messages)

    def _process(self, message: StorageMessage) -> None:
        try:
            self._handle(message)
        except Exception:  # settling failed (storage down): the lease expiry redelivers
            log.exception("queue %s: could not settle message %s", self.queue_name, message.id)
        finally:
            with self._room:
                self._in_flight -= 1
                if self._in_flight <= self._settings.threshold:
                    self._room.notify_all()

    def _handle(self, message: StorageMessage) -> None:
        limit = self._settings.max_dequeue_count
        count = message.dequeue_count or 0
        if count > limit:
            self._to_poison(message)
            return
        try:
            self._invoker.invoke(self.spec, self._trigger_input(message))
        except Exception as exc:
            log.warning(
                "function %s failed on message %s (attempt %d of %d): %s: %s",
                self.spec.name,
                message.id,
                message.dequeue_count,
                limit,
                type(exc).__name__,
                exc,
            )
            if count >= limit:
                self._to_poison(message)
            else:
                self._client.update_message(
                    message,
                    pop_receipt=message.pop_receipt,
                    visibility_timeout=int(self._settings.visibility_timeout),
                )
            return
        self._client.delete_message(message, pop_receipt=message.pop_receipt)

    def _trigger_input(self, message: StorageMessage) -> Any:
        from azure.functions.queue import QueueMessage

        text = message.content or ""
        if self._settings.message_encoding == "base64":
            try:
                body = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"message {message.id} is not valid base64") from exc
        else:
            body = text.encode()
        return QueueMessage(  # type: ignore[no-untyped-call]
            id=message.id,
            body=body,
            dequeue_count=message.dequeue_count,
            pop_receipt=message.pop_receipt,
            insertion_time=message.inserted_on,
            expiration_time=message.expires_on,
            time_next_visible=message.next_visible_on,
        )

    def _to_poison(self, message: StorageMessage) -> None:
        ensure_queue(self._poison)
        self._poison.send_message(message.content)
        self._client.delete_message(message, pop_receipt=message.pop_receipt)
        log.warning(
            "message %s moved to %s-poison after %d attempts",
            message.id,
            self.queue_name,
            message.dequeue_count,
        )

"""Publishing an alert logs no "is not a known attribute of CloudEvent" warning.

``azure.eventgrid``'s basic-topic publisher passes every per-call keyword of ``send()`` into
each ``CloudEvent`` model it builds from an ``azure.core.messaging.CloudEvent``, so the
transport options Keyguard has to give per call (the CA bundle as ``connection_verify``,
``retry_total``: the basic-topic client drops constructor options) each logged a warning per
event per alert. Keyguard now sends the documented CloudEvent-schema dictionaries, which
the publisher puts on the wire as they are; the per-call options still reach the transport.

Answer: the recorded 200 of a CloudEvents publish (``eventgrid_publish_cloudevents_200.yaml``).
The publisher is the client the public one delegates to for basic topics, built with the
replay transport (as in ``test_eventgrid_replay.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import trustme

from shared.alerts import Alert, send_alerts
from shared.clients import AzureClients
from tests.replay.harness import replay_settings
from tests.replay.recordings import interaction
from tests.replay.transport import ReplayTransport, StaticCredential

ACCEPTED = "eventgrid_publish_cloudevents_200.yaml"
RECORDINGS = (ACCEPTED,)


class _Clients(AzureClients):
    def alert_publisher(self) -> Any:
        from azure.eventgrid._legacy import EventGridPublisherClient

        endpoint = self._settings.alert_topic_endpoint
        assert endpoint is not None
        return EventGridPublisherClient(endpoint, self.credential, transport=self._transport)


class _SeenVerify(ReplayTransport):
    """The replay transport, noting the ``connection_verify`` each send was given."""

    verify: list[Any] = []

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.verify.append(kwargs.get("connection_verify"))
        return super().send(request, **kwargs)


def test_alert_publish_logs_no_unknown_attribute_warning(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    recorded = interaction(ACCEPTED)
    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))
    settings = replay_settings(
        KEYGUARD_ALERT_TOPIC_ENDPOINT=recorded.uri.split("?")[0], KEYGUARD_CA_BUNDLE=str(ca)
    )
    transport = _SeenVerify([recorded])
    azure = _Clients(settings, StaticCredential(), transport=transport)
    alert = Alert(
        name="BackupAccessMissing",
        severity="high",
        resource_ids=("/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv",),
        problem="Backup cannot read keys",
        remedy="az keyvault set-policy ...",
    )
    caplog.set_level(logging.WARNING)

    assert send_alerts(azure, [(alert, "evt-1"), (alert, "evt-2")]) is True

    noisy = [r.getMessage() for r in caplog.records if "known attribute" in r.getMessage()]
    assert noisy == []
    (sent,) = transport.calls("POST")
    assert sent.headers["Content-Type"].startswith("application/cloudevents-batch+json")
    assert [e["id"] for e in sent.body] == ["evt-1", "evt-2"]
    first = sent.body[0]
    assert first["type"] == "Keyguard.BackupAccessMissing" and first["specversion"] == "1.0"
    assert first["source"] and first["subject"] == alert.resource_ids[0]
    assert first["data"]["problem"] == "Backup cannot read keys"
    assert "time" in first
    assert transport.verify == [str(ca)]  # the CA bundle still reached the transport

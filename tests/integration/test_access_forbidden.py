"""403s on reading a vault or its role assignments: a clear PermanentError naming the
permission *Keyguard's own identity* lacks, raised through the real SDK clients.

The local Azure grants every ARM read, so this test runs a tiny HTTPS server (trustme CA,
127.0.0.1, a free port) that answers like ARM does when the caller lacks a permission. The
app reaches it by configuration alone (Custom cloud, CA bundle), with a static token
credential handed to ``AzureClients`` (its constructor's own parameter).
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import trustme
from azure.core.credentials import AccessToken

from shared.actions.base import ActionContext
from shared.actions.verify_access import VERIFY_ACCESS
from shared.clients import AzureClients
from shared.config import load_settings
from shared.errors import PermanentError
from shared.retry import classify
from shared.workitems import WorkItem, WorkKind

SUB = "00000000-0000-0000-0000-000000000001"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
VAULT = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1"


class _Arm(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True
    rbac_vault: ClassVar[bool] = False
    seen: ClassVar[list[str]] = []

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.seen.append(self.path.split("?")[0])
        assignments = "roleAssignments" in self.path
        if not assignments and self.rbac_vault:
            body = {
                "id": VAULT,
                "name": "kv1",
                "type": "Microsoft.KeyVault/vaults",
                "properties": {"tenantId": TENANT, "enableRbacAuthorization": True},
            }
            return self._send(200, body)
        action = (
            "Microsoft.Authorization/roleAssignments/read"
            if assignments
            else "Microsoft.KeyVault/vaults/read"
        )
        error = {
            "code": "AuthorizationFailed",
            "message": f"The client does not have authorization to perform action '{action}'.",
        }
        self._send(403, {"error": error})

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _StaticToken:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("token", 4102444800)


@pytest.fixture
def arm(tmp_path: Path) -> Iterator[dict[str, str]]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Arm)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Arm.seen = []
    try:
        yield {
            "KEYGUARD_CLOUD": "Custom",
            "KEYGUARD_ARM_ENDPOINT": f"https://127.0.0.1:{server.server_address[1]}",
            "KEYGUARD_CA_BUNDLE": str(ca_path),
            "KEYGUARD_HTTP_RETRY_TOTAL": "0",
        }
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _run(env: dict[str, str]) -> None:
    settings = load_settings(
        {
            **env,
            "KEYGUARD_TENANT_ID": TENANT,
            "KEYGUARD_SUBSCRIPTIONS": SUB,
            "KEYGUARD_VAULTS": "*",
            "KEYGUARD_BACKUP_PRINCIPAL_OBJECT_ID": "00000000-0000-0000-0000-0000000000b5",
            "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        }
    )
    ctx = ActionContext(
        settings=settings,
        azure=AzureClients(settings, credential=_StaticToken()),  # type: ignore[arg-type]
        storage=None,  # type: ignore[arg-type]
        now=lambda: datetime.now(UTC),
    )
    item = WorkItem(WorkKind.VERIFY_ACCESS, VAULT, "verify:kv1", params={"object_types": []})
    VERIFY_ACCESS.run(item, ctx)


def test_403_on_vault_read_names_keyguards_missing_permission(arm: dict[str, str]) -> None:
    _Arm.rbac_vault = False
    with pytest.raises(PermanentError) as err:
        _run(arm)
    message = str(err.value)
    assert "Keyguard's identity" in message
    assert "Microsoft.KeyVault/vaults/read" in message and VAULT in message
    assert err.value.code == "AuthorizationFailed"
    assert type(err.value.__cause__).__name__ == "HttpResponseError"
    assert classify(err.value) is err.value  # the worker dead-letters it, no retries
    assert _Arm.seen == [VAULT]  # one call, no retry


def test_403_on_role_assignments_names_roleassignments_read(arm: dict[str, str]) -> None:
    _Arm.rbac_vault = True
    try:
        with pytest.raises(PermanentError) as err:
            _run(arm)
    finally:
        _Arm.rbac_vault = False
    assert "Microsoft.Authorization/roleAssignments/read" in str(err.value)
    assert _Arm.seen == [VAULT, f"{VAULT}/providers/Microsoft.Authorization/roleAssignments"]

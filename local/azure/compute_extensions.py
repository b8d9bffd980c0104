"""The local Azure's Compute VM sub-resources: instance view and VM extensions (surface "arm").

Split from :mod:`local.azure.compute` (which owns the state and the VM/disk/DES routes) to
keep modules small. The ADE extension is an ordinary extension here; what makes it ADE is
its publisher and type (``ComputeState.ade_extension``). Extension PUT/DELETE are
``arm_operation`` routes, so the server emits the ``.../extensions/write|delete`` events
Keyguard reacts to.
"""

from __future__ import annotations

import copy
from typing import Any

from local.azure import core
from local.azure.compute import RG_BASE, get_existing, instance_view
from local.azure.compute_common import param, settle_backup
from local.azure.core import AzureHttpError, Request, Response, World


def _vm(world: World, request: Request) -> dict[str, Any]:
    return get_existing(world, request, "vms")


@core.ROUTER.route(
    "GET",
    RG_BASE + "/virtualMachines/{name}/instanceView",
    name="compute.virtualMachines.instance_view",
)
def vm_instance_view(world: World, request: Request) -> Response:
    """``GET .../virtualMachines/{vm}/instanceView``."""
    return Response(200, instance_view(world.compute, _vm(world, request)))


EXT_ONE = RG_BASE + "/virtualMachines/{name}/extensions/{ext}"
EXT_WRITE = "Microsoft.Compute/virtualMachines/extensions/write"


@core.ROUTER.route(
    "GET", RG_BASE + "/virtualMachines/{name}/extensions", name="compute.extensions.list"
)
def extensions_list(world: World, request: Request) -> Response:
    """``GET .../virtualMachines/{vm}/extensions`` (one page, as Azure answers)."""
    vm = _vm(world, request)
    exts = world.compute.extensions.get(vm["id"].lower(), {})
    return Response(200, {"value": [copy.deepcopy(e) for e in exts.values()]})


@core.ROUTER.route("GET", EXT_ONE, name="compute.extensions.get")
def extension_get(world: World, request: Request) -> Response:
    """``GET .../extensions/{name}``."""
    vm = _vm(world, request)
    ext = world.compute.extensions.get(vm["id"].lower(), {}).get(param(request, "ext").lower())
    if ext is None:
        raise core.not_found("Microsoft.Compute/virtualMachines/extensions", param(request, "ext"))
    return Response(200, copy.deepcopy(ext))


@core.ROUTER.route("PUT", EXT_ONE, name="compute.extensions.put", arm_operation=EXT_WRITE)
def extension_put(world: World, request: Request) -> Response:
    """``PUT .../extensions/{name}``: create or replace (how ADE is enabled or re-keyed)."""
    settle_backup(world)
    vm = _vm(world, request)
    incoming = request.json()
    if not isinstance(incoming, dict):
        raise AzureHttpError(400, "InvalidRequestContent", "The body must be a JSON object.")
    name = param(request, "ext")
    exts = world.compute.extensions.setdefault(vm["id"].lower(), {})
    existing = exts.get(name.lower())
    props = dict(incoming.get("properties") or {})
    props.pop("protectedSettings", None)  # write-only: never returned
    props["provisioningState"] = "Succeeded"
    body = {
        "name": name,
        "id": f"{vm['id']}/extensions/{name}",
        "type": "Microsoft.Compute/virtualMachines/extensions",
        "location": incoming.get("location", vm.get("location")),
        "properties": props,
    }
    if incoming.get("tags"):
        body["tags"] = incoming["tags"]
    exts[name.lower()] = body
    return Response(200 if existing else 201, copy.deepcopy(body))


@core.ROUTER.route(
    "DELETE",
    EXT_ONE,
    name="compute.extensions.delete",
    arm_operation="Microsoft.Compute/virtualMachines/extensions/delete",
)
def extension_delete(world: World, request: Request) -> Response:
    """``DELETE .../extensions/{name}``: 200 when removed, 204 when there was none."""
    vm = _vm(world, request)
    removed = world.compute.extensions.get(vm["id"].lower(), {}).pop(
        param(request, "ext").lower(), None
    )
    return Response(200 if removed else 204)

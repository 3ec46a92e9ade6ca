"""One raw call to the API server for the sensor adapters (Secrets, snapshots, command pods).

The adapters read one object or create and delete one pod at a time, and each classifies the
HTTP status itself (a 404 means something different to each), so they want the status and the
body, not the typed client's exceptions. This is ``kubernetes_asyncio``'s ``call_api`` with the
body read and the connection released; connection errors and timeouts propagate unchanged.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote


def object_path(resource: str, namespace: str, name: str | None = None) -> str:
    """``/api/v1/namespaces/NS/RESOURCE[/NAME]`` for a core (v1) resource."""
    path = f"/api/v1/namespaces/{quote(namespace, safe='')}/{resource}"
    return f"{path}/{quote(name, safe='')}" if name is not None else path


async def call(
    api_client: Any, method: str, path: str, *, request_timeout: float, body: object = None
) -> tuple[int, bytes]:
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    response = await api_client.call_api(
        path,
        method,
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
        _preload_content=False,
        _request_timeout=request_timeout,
    )
    try:
        raw: bytes = await response.read()
    finally:
        response.release()
    return int(response.status), raw

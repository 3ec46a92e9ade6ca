"""The floors for a Python webhook: an aiohttp HTTPS handler that answers every review at once.

``run.py`` runs them in the same benchmark run as ``leoflow webhook serve`` and the Go floor. They
do what any aiohttp webhook must (TLS, HTTP/1.1, read and parse the body, answer) and nothing else:
no checks, no mutation, no metrics. Three of them run:

- ``aiohttp-noop`` allows without a patch: the least an aiohttp webhook can add here;
- ``aiohttp-annotation-patch`` answers with one operation of Leoflow's patch, the annotation that
  records the agent version. Any patch, however small, makes the API server apply it and decode
  the result; this floor minus ``aiohttp-noop`` is that cost;
- ``aiohttp-static-patch`` answers with a patch computed once before the run, the very patch
  Leoflow returns for the benchmark's pod, so the API server applies and stores the same mutated
  pod as with Leoflow. Leoflow minus this floor is Leoflow's own handling; this floor minus
  ``aiohttp-annotation-patch`` is what the bigger pod costs the API server.

Usage: floor_aiohttp.py --name NAME --cert-file F --key-file F --port N [--patch-file F]
"""

from __future__ import annotations

import argparse
import json
import ssl
from pathlib import Path
from typing import Any

from aiohttp import web


def answering(name: str, patch: str | None) -> Any:
    async def answer(request: web.Request) -> web.Response:
        review = json.loads(await request.read())
        response: dict[str, Any] = {"uid": review["request"]["uid"], "allowed": True}
        if patch is not None:
            response["patchType"] = "JSONPatch"
            response["patch"] = patch
        # The benchmark probes with a dry run until the API server calls this webhook; a warning
        # is a trace even a patch-less answer leaves, and the measured reviews never carry it.
        if review["request"].get("dryRun"):
            response["warnings"] = [f"bench floor: {name}"]
        return web.json_response(
            {"apiVersion": review["apiVersion"], "kind": review["kind"], "response": response}
        )

    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--cert-file", required=True)
    parser.add_argument("--key-file", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--patch-file", type=Path, help="base64 JSON Patch to answer with")
    args = parser.parse_args()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert_file, args.key_file)
    patch = args.patch_file.read_text().strip() if args.patch_file else None
    app = web.Application()
    app.router.add_post("/mutate-pods", answering(args.name, patch))
    web.run_app(app, host="127.0.0.1", port=args.port, ssl_context=context, access_log=None, print=None)


if __name__ == "__main__":
    main()

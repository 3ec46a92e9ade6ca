"""How CLI commands reach a cluster, with kubectl's conventions.

``--kubeconfig`` (else the first existing file in ``$KUBECONFIG``, else ``~/.kube/config``),
``--context`` (else the file's current context) and ``-n/--namespace`` (else the context's
namespace, else ``default``). Every way this can go wrong ends as one line on stderr:

- a kubeconfig that is missing, unreadable, not a kubeconfig, or lacks the named context is the
  user's input being wrong: exit 2;
- a cluster that does not answer (connection refused, TLS failure, timeout) or refuses us
  (401/403) is the thing failing: exit 1.

Requests go through the controller's typed ``Transport`` (raw JSON, one error type), so the CLI
and the controller speak to the API server the same way.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config import ConfigException, load_kube_config

from leoflow.cli import EXIT_FAILED, EXIT_USAGE, CommandError
from leoflow.controller.kube.errors import ApiError
from leoflow.controller.kube.transport import KubeObject, ResourceRef, Transport

REQUEST_TIMEOUT_SECONDS = 15.0


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-n", "--namespace", default=None, help="namespace (default: the context's, else 'default')"
    )
    parser.add_argument(
        "--kubeconfig", type=Path, default=None, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"
    )
    parser.add_argument("--context", default=None, help="kubeconfig context (default: the current context)")


@dataclass(frozen=True)
class Target:
    """Where a command's requests go, resolved from flags, environment and the kubeconfig."""

    kubeconfig: Path
    context: str | None
    namespace: str
    server: str


def kubeconfig_path(flag: Path | None, environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if flag is not None:
        return flag
    listed = [Path(p) for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    for path in listed:
        if path.exists():
            return path
    if listed:
        return listed[0]
    return Path.home() / ".kube" / "config"


def resolve_target(
    kubeconfig: Path | None, context: str | None, namespace: str | None, environ: dict[str, str] | None = None
) -> Target:
    """Reads the kubeconfig far enough to name the server and namespace; raises CommandError (2)."""
    path = kubeconfig_path(kubeconfig, environ)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise CommandError(
            f"kubeconfig {path} does not exist (pass --kubeconfig, set KUBECONFIG, or run `leoflow dev up` "
            "and `export KUBECONFIG=$(leoflow dev kubeconfig)`)",
            EXIT_USAGE,
        ) from None
    except OSError as err:
        raise CommandError(f"kubeconfig {path} is unreadable: {err.strerror or err}", EXIT_USAGE) from None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise CommandError(f"kubeconfig {path} is not valid YAML{at}", EXIT_USAGE) from None
    if not isinstance(config, dict) or not isinstance(config.get("contexts"), list):
        raise CommandError(f"kubeconfig {path} is not a kubeconfig (it has no 'contexts' list)", EXIT_USAGE)
    name = context or config.get("current-context")
    if not name:
        raise CommandError(f"kubeconfig {path} has no current-context; pass --context", EXIT_USAGE)
    entry = _named(config.get("contexts"), name)
    if entry is None:
        known = ", ".join(str(c.get("name")) for c in config["contexts"] if isinstance(c, dict)) or "none"
        raise CommandError(f"kubeconfig {path} has no context {name!r} (contexts: {known})", EXIT_USAGE)
    cluster_name = entry.get("cluster") if isinstance(entry, dict) else None
    cluster = _named(config.get("clusters"), cluster_name) if isinstance(cluster_name, str) else None
    server = cluster.get("server") if isinstance(cluster, dict) else None
    if not isinstance(server, str) or not server:
        raise CommandError(f"kubeconfig {path}: context {name!r} names no cluster with a server", EXIT_USAGE)
    ns = namespace or (entry.get("namespace") if isinstance(entry, dict) else None) or "default"
    return Target(kubeconfig=path, context=context, namespace=str(ns), server=server)


def _named(items: Any, name: Any) -> dict[str, Any] | None:
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and item.get("name") == name:
            inner = item.get("context") or item.get("cluster")
            return inner if isinstance(inner, dict) else {}
    return None


class Kube:
    """A connected cluster: typed requests that turn API failures into CommandErrors."""

    def __init__(self, target: Target, transport: Transport) -> None:
        self.target = target
        self.transport = transport

    @property
    def namespace(self) -> str:
        return self.target.namespace

    async def request(self, method: str, path: str, **kwargs: Any) -> KubeObject:
        try:
            return await self.transport.request(method, path, **kwargs)
        except ApiError as err:
            raise self.explain(err) from None

    async def get(self, ref: ResourceRef, name: str, what: str) -> KubeObject:
        """GET one namespaced object; a missing object is ``<what> NAME not found in namespace N``."""
        try:
            return await self.transport.request("GET", ref.path(self.namespace, name))
        except ApiError as err:
            if err.not_found and not type_missing(err):
                raise CommandError(f"{what} {name!r} not found in namespace {self.namespace!r}") from None
            raise self.explain(err) from None

    async def find(self, ref: ResourceRef, name: str) -> KubeObject | None:
        try:
            return await self.transport.request("GET", ref.path(self.namespace, name))
        except ApiError as err:
            if err.not_found and not type_missing(err):
                return None
            raise self.explain(err) from None

    async def list(
        self, ref: ResourceRef, *, namespace: str | None, selector: str | None = None
    ) -> list[KubeObject]:
        query = [("labelSelector", selector)] if selector else []
        body = await self.request("GET", ref.path(namespace), query=query)
        items = body.get("items")
        return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []

    def explain(self, err: ApiError) -> CommandError:
        """One line that says what went wrong and, where we know, what to do."""
        if err.code == 0:
            return CommandError(
                f"cannot reach the cluster at {self.target.server} ({err.reason}: {err.message}); "
                f"is it running? (kubeconfig {self.target.kubeconfig})",
                EXIT_FAILED,
            )
        if type_missing(err):
            return CommandError(
                "the Leoflow resource types are not installed in this cluster: "
                "kubectl apply --server-side -f manifests/crds/",
                EXIT_FAILED,
            )
        if err.code in (401, 403):
            return CommandError(f"the cluster refused the request: {err.message}", EXIT_FAILED)
        if err.code in (400, 422):
            return CommandError(f"the cluster rejected the request: {err.message}", EXIT_USAGE)
        return CommandError(f"the cluster answered HTTP {err.code} {err.reason}: {err.message}", EXIT_FAILED)


def type_missing(err: ApiError) -> bool:
    """The API server's 404 for an unknown resource type, as opposed to an unknown object."""
    unknown = ("could not find the requested resource", "404 page not found")
    return err.code == 404 and any(text in err.message for text in unknown)


@asynccontextmanager
async def connect(args: argparse.Namespace) -> AsyncIterator[Kube]:
    target = resolve_target(args.kubeconfig, args.context, args.namespace)
    configuration = Configuration()
    try:
        await load_kube_config(
            config_file=str(target.kubeconfig), context=target.context, client_configuration=configuration
        )
    except (ConfigException, OSError, ValueError, TypeError, KeyError) as err:
        raise CommandError(f"kubeconfig {target.kubeconfig} cannot be used: {err}", EXIT_USAGE) from None
    api = ApiClient(configuration)
    try:
        yield Kube(target, Transport(api, request_timeout=REQUEST_TIMEOUT_SECONDS))
    finally:
        await api.close()

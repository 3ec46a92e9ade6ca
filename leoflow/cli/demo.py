"""``leoflow demo`` (and ``make demo``): Leoflow end to end on a fresh machine, in one command.

It brings up the local cluster with its real node (``leoflow dev``; idempotent, so a second demo
reuses the running cluster and every cached binary and image), installs the CRDs, loads the agent
image, starts the webhook and the controller as child processes on this machine, applies
``examples/etl/demo``, triggers a run, shows it live, prints a summary and exits 0 when the run
Succeeded, 1 otherwise.

The webhook listens on 127.0.0.1 (the API server calls it); the controller's agent server
listens on the node address (``ClusterState.node_address``), the host's address on the real
node's pod bridge, so agents in pods reach it. One fresh CA signs both serving certificates; pods
find it in the ``leoflow-ca`` ConfigMap. Child processes log to ``<home>/demo/*.log`` and are
stopped when the demo ends; the webhook registration is removed with them, so the cluster left
running admits pods normally.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from leoflow.certs import pemfiles
from leoflow.certs.authority import issue_serving, new_ca
from leoflow.cli import EXIT_FAILED, EXIT_OK, CommandError
from leoflow.cli.kubeclient import Kube, connect
from leoflow.cli.runs import (
    SeenTimes,
    apply_dag,
    describe_text,
    follow_run,
    load_dag_file,
    run_definition,
    run_status,
)
from leoflow.controller.kube.transport import DAGRUNS, PODS, KubeObject
from leoflow.controller.podnames import RUN_LABEL
from leoflow.dev import cluster, images
from leoflow.dev.node import NodeError, load_image
from leoflow.dev.processes import free_port
from leoflow.spec.resources import API_VERSION, RunPhase
from leoflow.webhook.registration import only_namespaces, webhook_configuration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "etl" / "demo"
AGENT_BINARY = REPO / "agent" / "bin" / "leoflow-agent"
WEBHOOK_CONFIGURATION = "leoflow-demo-agent-injector"
CA_CONFIGMAP = "leoflow-ca"


def default_home() -> Path:
    return Path(os.environ.get("LEOFLOW_DEMO_HOME", Path.home() / ".local" / "share" / "leoflow" / "demo"))


def register(subparsers: Any) -> None:
    demo = subparsers.add_parser(
        "demo", help="run the ETL example end to end on a local cluster (what `make demo` runs)"
    )
    demo.add_argument(
        "--home",
        type=Path,
        default=None,
        help="cluster state directory (default: $LEOFLOW_DEMO_HOME or ~/.local/share/leoflow/demo)",
    )
    demo.add_argument("-n", "--namespace", default="leoflow-demo", help="namespace for the DAG and its run")
    demo.add_argument(
        "--timeout", type=float, default=600.0, help="seconds to wait for the run (default 600)"
    )
    demo.add_argument("--stop-cluster", action="store_true", help="stop the cluster at the end")
    demo.set_defaults(handler=run_demo)


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


@dataclass(frozen=True)
class Tls:
    directory: Path

    @property
    def cert(self) -> Path:
        return self.directory / "tls.crt"

    @property
    def key(self) -> Path:
        return self.directory / "tls.key"

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"


def write_tls(directory: Path, addresses: tuple[str, ...]) -> Tls:
    """A fresh CA and one serving certificate for the webhook and the agent server's addresses."""
    now = datetime.datetime.now(datetime.UTC)
    ca = new_ca(common_name="leoflow-demo-ca", now=now, validity=datetime.timedelta(days=2))
    pair = issue_serving(
        ca, dns_names=(), ip_addresses=addresses, now=now, validity=datetime.timedelta(days=1)
    )
    directory.mkdir(parents=True, exist_ok=True)
    tls = Tls(directory)
    tls.ca.write_bytes(ca.cert_pem)
    tls.cert.write_bytes(pair.cert_pem)
    pemfiles.write_private(tls.key, pair.key_pem)
    return tls


def kubectl(state: cluster.ClusterState, *args: str, input: str | None = None) -> str:
    result = cluster.kubectl(state, *args, input=input, check=False)
    if result.returncode != 0:
        raise CommandError(f"kubectl {' '.join(args[:3])} failed: {result.stderr.strip()}")
    return result.stdout


def agent_binary() -> Path:
    if not AGENT_BINARY.exists():
        say("building the agent (hack/build-agent.sh)")
        built = subprocess.run([str(REPO / "hack" / "build-agent.sh")], check=False)
        if built.returncode != 0 or not AGENT_BINARY.exists():
            raise CommandError("building the agent failed: run `make agent` and read its output")
    return AGENT_BINARY


def prepare_namespace(state: cluster.ClusterState, namespace: str, tls: Tls) -> None:
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": CA_CONFIGMAP, "namespace": namespace},
            "data": {"ca.crt": tls.ca.read_text()},
        },
    ]
    kubectl(
        state,
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
    )
    deadline = time.monotonic() + 60
    while cluster.kubectl(state, "get", "serviceaccount", "default", "-n", namespace, check=False).returncode:
        if time.monotonic() > deadline:
            raise CommandError(f"namespace {namespace}: the default ServiceAccount never appeared")
        time.sleep(0.2)


@contextmanager
def child(name: str, argv: list[str], log_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A child process logging to ``<log_dir>/<name>.log``, stopped when the block ends."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / f"{name}.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_ready(
    name: str, process: subprocess.Popen[bytes], url: str, context: ssl.SSLContext | None, log: Path
) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url, context=context, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise CommandError(f"the {name} did not become ready ({url}); its log {log} ends with:\n{tail}")
        time.sleep(0.2)


def demo_webhook_configuration(url: str, ca_pem: bytes, namespace: str) -> dict[str, Any]:
    """Scoped to the demo's namespace, so the demo never touches pods elsewhere in the cluster."""
    return webhook_configuration(
        WEBHOOK_CONFIGURATION, url=url, ca_bundle=ca_pem, namespace_selector=only_namespaces([namespace])
    )


@contextmanager
def registered_webhook(state: cluster.ClusterState, url: str, tls: Tls, namespace: str) -> Iterator[None]:
    config = demo_webhook_configuration(url, tls.ca.read_bytes(), namespace)
    kubectl(state, "apply", "--server-side", "--force-conflicts", "-f", "-", input=json.dumps(config))
    try:
        yield
    finally:
        cluster.kubectl(
            state,
            "delete",
            "mutatingwebhookconfiguration",
            WEBHOOK_CONFIGURATION,
            "--ignore-not-found",
            check=False,
        )


def controller_available() -> bool:
    """Whether this checkout has ``leoflow controller run`` (the controller's CLI)."""
    help_text = subprocess.run(
        [sys.executable, "-m", "leoflow", "controller", "run", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    return help_text.returncode == 0


def controller_argv(
    state: cluster.ClusterState, namespace: str, agent_addr: str, health_port: int, tls: Tls
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "leoflow",
        "controller",
        "run",
        "--kubeconfig",
        str(state.kubeconfig),
        "--namespace",
        namespace,
        "--no-leader-elect",
        "--agent-address",
        agent_addr,
        "--agent-tls-cert",
        str(tls.cert),
        "--agent-tls-key",
        str(tls.key),
        "--metrics-address",
        f"127.0.0.1:{health_port}",
    ]


async def create_run(kube: Kube, dag: str) -> KubeObject:
    body = {
        "apiVersion": API_VERSION,
        "kind": "DAGRun",
        "metadata": {"generateName": f"{dag}-", "labels": {"leoflow.io/dag": dag}},
        "spec": {"dagName": dag},
    }
    return await kube.request("POST", DAGRUNS.path(kube.namespace), body=body, verb="create")


async def trigger_and_follow(args: argparse.Namespace, state: cluster.ClusterState, controller: bool) -> int:
    connection = argparse.Namespace(kubeconfig=state.kubeconfig, context=None, namespace=args.namespace)
    dag = load_dag_file(EXAMPLE)
    async with connect(connection) as kube:
        await apply_dag(kube, dag)
        say(f"applied DAG {dag.name} ({len(dag.spec.tasks)} tasks) from {EXAMPLE.relative_to(REPO)}")
        run = await create_run(kube, dag.name)
        name = str(run["metadata"]["name"])
        say(f"created run {name}")
        if not controller:
            raise CommandError(
                f"the controller is missing: this checkout has no `leoflow controller run`, so run {name} "
                "stays Pending; everything before it (cluster, CRDs, agent image, webhook, DAG, run) "
                "is in place"
            )
        seen = SeenTimes()
        try:
            run = await asyncio.wait_for(
                follow_run(kube, name, live=sys.stdout.isatty(), seen=seen), args.timeout
            )
        except TimeoutError:
            raise CommandError(f"run {name} did not finish within {args.timeout:g} s") from None
        spec = await run_definition(kube, run)
        pods = await kube.list(PODS, namespace=kube.namespace, selector=f"{RUN_LABEL}={name}")
    present = {str(p["metadata"]["name"]) for p in pods}
    print()
    sys.stdout.write(describe_text(run, spec, present, args.namespace, seen=seen.times))
    phase = run_status(run).phase
    kubeconfig = f"--kubeconfig {state.kubeconfig}"
    print(f"\nTry: leoflow describe run {name} -n {args.namespace} {kubeconfig}")
    print(f"     leoflow get runs -n {args.namespace} {kubeconfig}")
    say(f"run {name} {phase.value}")
    return EXIT_OK if phase is RunPhase.SUCCEEDED else EXIT_FAILED


def run_demo(args: argparse.Namespace) -> int:
    home: Path = (args.home or default_home()).resolve()
    say(f"local cluster in {home} (first time: builds nothing if `make setup` ran; starts in about a minute)")
    try:
        state = cluster.up(cluster.UpOptions(home=home, kwok_nodes=0, real_node=True))
    except cluster.ClusterError as err:
        raise CommandError(f"the local cluster did not come up: {err}") from None
    address = state.node_address
    if address is None:
        raise CommandError(
            f"the cluster in {home} has no real node; run `leoflow dev down --home {home}` and retry"
        )
    say(f"cluster up: API server {state.apiserver_url}, real node at {address}")
    try:
        try:
            cluster.install_crds(state)
        except cluster.ClusterError as err:
            raise CommandError(f"installing the CRDs: {err}") from None
        say("CRDs installed (dags.leoflow.io, dagruns.leoflow.io)")
        load_image(home, images.agent_spec(agent_binary()))
        say(f"agent image {images.AGENT_IMAGE} loaded into the node")
        work = home / "demo"
        tls = write_tls(work / "tls", ("127.0.0.1", address))
        prepare_namespace(state, args.namespace, tls)
        agent_addr = f"{address}:{free_port(address)}"
        has_controller = controller_available()
        with ExitStack() as stack:
            if has_controller:
                health = free_port("127.0.0.1")
                controller = stack.enter_context(
                    child("controller", controller_argv(state, args.namespace, agent_addr, health, tls), work)
                )
                wait_ready(
                    "controller",
                    controller,
                    f"http://127.0.0.1:{health}/readyz",
                    None,
                    work / "controller.log",
                )
                say(f"controller running (agent server {agent_addr}; log {work / 'controller.log'})")
            port = free_port("127.0.0.1")
            webhook = stack.enter_context(child("webhook", webhook_argv(port, agent_addr, tls), work))
            context = ssl.create_default_context(cafile=str(tls.ca))
            wait_ready("webhook", webhook, f"https://127.0.0.1:{port}/readyz", context, work / "webhook.log")
            stack.enter_context(
                registered_webhook(state, f"https://127.0.0.1:{port}/mutate-pods", tls, args.namespace)
            )
            say(f"webhook running on 127.0.0.1:{port} (log {work / 'webhook.log'})")
            return asyncio.run(trigger_and_follow(args, state, has_controller))
    except (NodeError, images.ImageError, OSError) as err:
        raise CommandError(f"demo setup failed: {err}") from None
    finally:
        if args.stop_cluster:
            cluster.down(home)
            say("cluster stopped")
        else:
            say(
                f"the cluster keeps running: export KUBECONFIG={state.kubeconfig}; stop it with "
                f"`leoflow dev down --home {home}`"
            )


def webhook_argv(port: int, agent_addr: str, tls: Tls) -> list[str]:
    return [
        sys.executable,
        "-m",
        "leoflow",
        "-v",
        "webhook",
        "serve",
        "--cert-file",
        str(tls.cert),
        "--key-file",
        str(tls.key),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--agent-image",
        images.AGENT_IMAGE,
        "--controller-addr",
        agent_addr,
        "--ca-configmap",
        CA_CONFIGMAP,
    ]

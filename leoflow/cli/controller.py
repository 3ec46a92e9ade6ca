"""``leoflow controller run``: the controller process (informers, leader election, workers, cron,
the agent gRPC server, and /metrics /healthz /readyz).

SIGTERM and SIGINT stop it gracefully: workers finish their current API calls, the Lease is
released so a standby takes over at once, and the agent server drains.

The agent server's certificate may not exist yet when the controller starts (a plain
``kubectl apply -k`` install: the certificate keeper issues Secret ``leoflow-controller-tls`` and
the kubelet projects it into the pod up to a minute later). Then the controller runs without the
agent server, logging that it waits: agents fall back to the termination message and results
arrive through the pod watch, until the files appear and the server starts.

Inside a pod (``POD_NAMESPACE`` and ``POD_NAME`` set, as the manifests do) the leader labels its
pod ``leoflow.io/leader=true``: the agents' Service selects it (leoflow/controller/leaderpod.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import signal
from pathlib import Path
from typing import Any

from kubernetes_asyncio import config
from kubernetes_asyncio.client import ApiClient, Configuration

from leoflow import logfmt
from leoflow.certs.servingfiles import ServingFiles
from leoflow.cli import EXIT_OK, EXIT_USAGE, CommandError, checks
from leoflow.controller.agentserver import AgentServer, CertificateUnavailable, ServerTls
from leoflow.controller.agentsink import RunReportSink
from leoflow.controller.app import Controller, ControllerSettings, default_identity
from leoflow.controller.cleanup import PolicyError, parse_policy
from leoflow.controller.health import start_health_server
from leoflow.controller.kube.transport import pin_environment
from leoflow.controller.leaderpod import own_pod_from_environment
from leoflow.controller.planner import PlanSettings
from leoflow.controller.podstatus import ClassifySettings
from leoflow.controller.reconcile import ReconcileSettings
from leoflow.controller.sensors.engine import EngineOptions
from leoflow.controller.sensors.http import HttpOptions
from leoflow.controller.tokenreview import TokenReviewer
from leoflow.spec.podmetadata import annotation_key

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    controller = subparsers.add_parser("controller", help="the Leoflow controller")
    actions = controller.add_subparsers(dest="controller_command", metavar="ACTION", required=True)
    run = actions.add_parser(
        "run",
        help="run the controller until SIGTERM",
        description="Runs DAGRuns: watches DAGs, DAGRuns and Leoflow pods, creates pods, records status.",
    )
    add = run.add_argument
    add("--kubeconfig", help="kubeconfig file (default: in-cluster config, then $KUBECONFIG)")
    add("--namespace", "-n", help="act in this namespace only (default: all namespaces)")
    add("--agent-address", default="0.0.0.0:9443", help="HOST:PORT the agent gRPC server binds")
    add("--agent-tls-cert", help="agent server certificate PEM")
    add("--agent-tls-key", help="its private key PEM")
    add(
        "--agent-ca-file",
        help="the CA PEM agents verify the controller with; copied into each task namespace as "
        "ConfigMap leoflow-ca before its first pod (default: copy nothing)",
    )
    add(
        "--node-lost-grace",
        type=float,
        default=ClassifySettings.node_lost_grace,
        metavar="SECONDS",
        help="fail (as NodeLost, on the infrastructure budget) and force-delete a task pod whose "
        f"node has not been Ready this long (default {ClassifySettings.node_lost_grace:g})",
    )
    add(
        "--quota-wait",
        type=float,
        default=ReconcileSettings.quota_wait,
        metavar="SECONDS",
        help="how long a task pod an exceeded ResourceQuota refuses waits for room, its create "
        "sent again with backoff, before the attempt fails as ExceededQuota "
        f"(default {ReconcileSettings.quota_wait:g})",
    )
    add(
        "--sensor-http-per-host",
        type=int,
        default=HttpOptions.per_host_limit,
        metavar="N",
        help="HTTP sensor pokes in flight at once to one scheme://host:port; the rest wait in line "
        f"(default {HttpOptions.per_host_limit}, at most {HttpOptions.total_limit})",
    )
    add(
        "--sensor-progress-period",
        type=float,
        default=ControllerSettings.sensor_progress_period,
        metavar="SECONDS",
        help="how often the state of sensors that poked is written to their runs' status, so a "
        f"restarted controller resumes them (default {ControllerSettings.sensor_progress_period:g})",
    )
    add(
        "--sensor-progress-batch",
        type=int,
        default=ControllerSettings.sensor_progress_batch,
        metavar="N",
        help="at most this many sensors' runs get their state written per period "
        f"(default {ControllerSettings.sensor_progress_batch})",
    )
    add(
        "--agent-insecure",
        action="store_true",
        help="serve agents in plaintext without TokenReview (local experiments only)",
    )
    add("--no-agent-server", action="store_true", help="do not serve agents (pod-status path only)")
    add(
        "--no-prestart",
        action="store_true",
        help="create no pod ahead of its upstreams' end, whatever the DAGs say (prestart)",
    )
    add("--metrics-address", default="0.0.0.0:8080", help="HOST:PORT for /metrics /healthz /readyz")
    add(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="take a Lease before acting",
    )
    add("--lease-namespace", default="leoflow-system", help="namespace of the Lease (default leoflow-system)")
    add("--identity", default=None, help="this replica's name in the Lease (default: $POD_NAME or host-pid)")
    add(
        "--cleanup",
        default="delete-succeeded",
        help="pod cleanup: delete-succeeded | keep-failed-ttl=DURATION | keep-all (default delete-succeeded)",
    )
    add("--workers", type=int, default=16, help="concurrent reconciles (default 16)")
    add(
        "--pod-annotation",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="annotation added to every task pod (repeatable; e.g. to drive KWOK-simulated pods)",
    )
    run.set_defaults(handler=run_controller)


def _annotations(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise CommandError(f"--pod-annotation must be KEY=VALUE, got {value!r}", EXIT_USAGE)
        try:
            # Leoflow's own keys (the attempt id adoption relies on) must not be overridden.
            annotation_key(key)
        except ValueError as exc:
            raise CommandError(f"--pod-annotation {value!r}: {exc}", EXIT_USAGE) from exc
        out[key] = text
    return out


def _sensor_options(args: argparse.Namespace) -> EngineOptions:
    if not 1 <= args.sensor_http_per_host <= HttpOptions.total_limit:
        raise CommandError(
            f"--sensor-http-per-host must be between 1 and {HttpOptions.total_limit}, "
            f"got {args.sensor_http_per_host}",
            EXIT_USAGE,
        )
    period = args.sensor_progress_period
    if not (math.isfinite(period) and period > 0):
        raise CommandError(
            f"--sensor-progress-period must be a positive number of seconds, got {period:g}", EXIT_USAGE
        )
    if args.sensor_progress_batch < 1:
        raise CommandError(
            f"--sensor-progress-batch must be at least 1, got {args.sensor_progress_batch}", EXIT_USAGE
        )
    return EngineOptions(http=HttpOptions(per_host_limit=args.sensor_http_per_host))


def controller_settings(args: argparse.Namespace) -> ControllerSettings:
    """The settings ``controller run`` runs with; bad flag values raise a usage error naming the flag."""
    try:
        cleanup = parse_policy(args.cleanup)
    except PolicyError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    if args.workers < 1:
        raise CommandError("--workers must be at least 1", EXIT_USAGE)
    if args.node_lost_grace < 0:
        raise CommandError("--node-lost-grace must not be negative", EXIT_USAGE)
    if not (math.isfinite(args.quota_wait) and args.quota_wait >= 0):
        raise CommandError(
            f"--quota-wait must be a number of seconds >= 0, got {args.quota_wait:g}", EXIT_USAGE
        )
    sensors = _sensor_options(args)
    annotations = _annotations(args.pod_annotation)
    return ControllerSettings(
        namespace=args.namespace,
        workers=args.workers,
        leader_elect=args.leader_elect,
        lease_namespace=args.lease_namespace,
        identity=args.identity or default_identity(),
        reconcile=ReconcileSettings(
            cleanup=cleanup,
            pod_annotations=(lambda _pod: annotations) if annotations else None,
            classify=ClassifySettings(node_lost_grace=args.node_lost_grace),
            quota_wait=args.quota_wait,
            # Prepared pods wait for a release only an agent server can deliver.
            plan=PlanSettings(prestart=not (args.no_agent_server or args.no_prestart)),
        ),
        sensors=sensors,
        sensor_progress_period=args.sensor_progress_period,
        sensor_progress_batch=args.sensor_progress_batch,
        agent_ca_file=Path(args.agent_ca_file) if args.agent_ca_file else None,
        own_pod=own_pod_from_environment(),
    )


def run_controller(args: argparse.Namespace) -> int:
    logfmt.configure(logging.DEBUG if args.verbose else logging.INFO)
    settings = controller_settings(args)
    # Port 0 lets the OS pick: both servers log the port they bound.
    metrics_address = checks.host_port("--metrics-address", args.metrics_address, lowest_port=0)
    agent_address = (
        None
        if args.no_agent_server
        else checks.host_port("--agent-address", args.agent_address, lowest_port=0)
    )
    tls = None
    if agent_address is not None and not args.agent_insecure:
        if not (args.agent_tls_cert and args.agent_tls_key):
            raise CommandError(
                "the agent server needs --agent-tls-cert and --agent-tls-key (or --agent-insecure)",
                EXIT_USAGE,
            )
        tls = ServerTls(cert_file=Path(args.agent_tls_cert), key_file=Path(args.agent_tls_key))
    asyncio.run(_serve(args.kubeconfig, settings, metrics_address, agent_address, tls))
    return EXIT_OK


async def _client(kubeconfig: str | None) -> Any:
    if kubeconfig:
        return pin_environment(await config.new_client_from_config(config_file=kubeconfig))
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return pin_environment(ApiClient(Configuration.get_default_copy()))
    except config.ConfigException:
        return pin_environment(await config.new_client_from_config())


async def _serve(
    kubeconfig: str | None,
    settings: ControllerSettings,
    metrics_address: tuple[str, int],
    agent_address: tuple[str, int] | None,
    tls: ServerTls | None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        api = await _client(kubeconfig)
    except Exception as exc:
        raise CommandError(f"cannot load the Kubernetes configuration: {exc}") from None
    controller = Controller(api, settings)
    runner, port = await start_health_server(*metrics_address, lambda: controller.ready)
    log.info("serving health and metrics", extra={"address": f"{metrics_address[0]}:{port}"})
    agents: AgentServer | None = None
    waiting: asyncio.Task[None] | None = None
    try:
        if agent_address is not None:
            reviewer = None if tls is None else TokenReviewer(controller.transport)
            agents = AgentServer(
                RunReportSink(controller.reconciler), reviewer, tls=tls, metrics=controller.metrics
            )
            try:
                await _start_agents(agents, agent_address, tls)
            except CertificateUnavailable:
                if tls is None:  # only a TLS server has certificate files to wait for
                    raise
                waiting = asyncio.create_task(_start_agents_when_certified(agents, agent_address, tls))
        await controller.run(stop)
    finally:
        if waiting is not None:
            waiting.cancel()
        if agents is not None:
            await agents.stop()
        await runner.cleanup()
        await api.close()


async def _start_agents(agents: AgentServer, address: tuple[str, int], tls: ServerTls | None) -> None:
    bound = await agents.start(*address)
    log.info("serving agents", extra={"address": f"{address[0]}:{bound}", "tls": tls is not None})


async def _start_agents_when_certified(agents: AgentServer, address: tuple[str, int], tls: ServerTls) -> None:
    """Starts the agent server once its certificate files hold a valid pair."""
    log.warning(
        "agent server not started: no serving certificate yet; results come through the pod watch",
        extra={"cert_file": str(tls.cert_file), "key_file": str(tls.key_file)},
    )
    await ServingFiles(tls.cert_file, tls.key_file).wait()
    try:
        await _start_agents(agents, address, tls)
    except (OSError, CertificateUnavailable):
        # The controller goes on without the fast path rather than stopping all work.
        log.exception("agent server could not start; results come through the pod watch")

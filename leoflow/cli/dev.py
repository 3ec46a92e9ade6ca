"""``leoflow dev up | down | status | kubeconfig``: the local cluster from the command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from leoflow.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError
from leoflow.dev import cluster
from leoflow.dev.binaries import BinaryError, ensure_binaries
from leoflow.dev.images_cli import register_image_commands


def _home_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="cluster state directory (default: $LEOFLOW_DEV_HOME or ~/.local/share/leoflow/dev)",
    )


def _home(args: argparse.Namespace) -> Path:
    home: Path = args.home or cluster.default_home()
    return home


def _positive_count(value: str) -> int:
    try:
        count = int(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from err
    if not 0 <= count <= 100:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100, got {count}")
    return count


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a port number, got {value!r}") from err
    if not 1024 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 1024 and 65535, got {port}")
    return port


def _up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    options = cluster.UpOptions(
        home=_home(args),
        kwok_nodes=args.kwok_nodes,
        real_node=not args.no_real_node,
        apiserver_port=args.apiserver_port,
    )
    try:
        state = cluster.up(options)
    except (cluster.ClusterError, BinaryError) as err:
        raise CommandError(str(err)) from err
    _, components = cluster.status(state.home)
    print(f"cluster up in {time.monotonic() - started:.1f}s ({state.kubernetes_version})")
    print(f"  api server   {state.apiserver_url}")
    for component in components:
        print(f"  {component.name:<24} pid {component.pid}")
    print(f"  kwok nodes   {state.kwok_nodes}")
    if state.real_node:
        print(f"  real node    {cluster.REAL_NODE_NAME} (pods reach the host at {state.node_address})")
    print(f"  kubeconfig   {state.kubeconfig}")
    print(f"\nexport KUBECONFIG={state.kubeconfig}")
    return EXIT_OK


def _down(args: argparse.Namespace) -> int:
    try:
        stopped = cluster.down(_home(args))
    except cluster.ClusterError as err:
        raise CommandError(str(err)) from err
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    state, components = cluster.status(_home(args))
    if state is None:
        print(f"no cluster in {_home(args)}", file=sys.stderr)
        return EXIT_FAILED
    running = all(c.pid is not None for c in components)
    print(f"cluster {'running' if running else 'NOT fully running'} ({state.kubernetes_version})")
    print(f"  api server   {state.apiserver_url}")
    for component in components:
        print(f"  {component.name:<24} {'pid ' + str(component.pid) if component.pid else 'stopped'}")
    return EXIT_OK if running else EXIT_FAILED


def _build(_args: argparse.Namespace) -> int:
    try:
        binaries = ensure_binaries()
    except BinaryError as err:
        raise CommandError(str(err)) from err
    print(f"kubernetes binaries: {binaries.kubernetes_dir}")
    print(f"kwok:                {binaries.kwok}")
    return EXIT_OK


def _kubeconfig(args: argparse.Namespace) -> int:
    state, _ = cluster.status(_home(args))
    if state is None:
        raise CommandError(f"no cluster in {_home(args)}: run `leoflow dev up` first", EXIT_FAILED)
    print(state.kubeconfig)
    return EXIT_OK


def register(subparsers: Any) -> None:
    dev = subparsers.add_parser("dev", help="run a real local Kubernetes cluster")
    dev.set_defaults(handler=lambda _args: dev.print_help(sys.stderr) or EXIT_USAGE)
    verbs = dev.add_subparsers(dest="verb", metavar="VERB")
    build = verbs.add_parser("build", help="build and cache the cluster binaries (no cluster started)")
    build.set_defaults(handler=_build)
    up = verbs.add_parser("up", help="build (once) and start the cluster; safe to run twice")
    _home_arg(up)
    up.add_argument("--kwok-nodes", type=_positive_count, default=3, help="simulated nodes (default 3)")
    up.add_argument("--no-real-node", action="store_true", help="skip the kubelet + containerd node")
    up.add_argument("--apiserver-port", type=_port, default=None, help="fixed API server port")
    up.set_defaults(handler=_up)
    down = verbs.add_parser("down", help="stop everything `up` started")
    _home_arg(down)
    down.set_defaults(handler=_down)
    status = verbs.add_parser("status", help="what is running")
    _home_arg(status)
    status.set_defaults(handler=_status)
    kubeconfig = verbs.add_parser("kubeconfig", help="print the admin kubeconfig path")
    _home_arg(kubeconfig)
    kubeconfig.set_defaults(handler=_kubeconfig)
    register_image_commands(verbs)

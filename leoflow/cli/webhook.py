"""``leoflow webhook serve``: the agent-injection admission webhook.

Every flag can also come from the environment (the Deployment sets env, a developer types flags).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
from pathlib import Path
from typing import Any

from leoflow import __version__
from leoflow.agent_inject import InjectionSettings
from leoflow.cli import EXIT_OK, EXIT_USAGE, CommandError
from leoflow.webhook import agent_in_image, image_index
from leoflow.webhook.server import ServeOptions, serve
from leoflow.webhook.serving import DEFAULT_EXCLUDED_NAMESPACES, WebhookConfig


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def register(subparsers: Any) -> None:
    webhook = subparsers.add_parser("webhook", help="the agent-injection admission webhook")
    actions = webhook.add_subparsers(dest="webhook_command", metavar="ACTION", required=True)
    serve_parser = actions.add_parser(
        "serve",
        help="serve POST /mutate-pods over HTTPS",
        description="Serves AdmissionReview v1 for pods labelled leoflow.io/inject=true. "
        "Each flag falls back to the environment variable in brackets.",
    )
    add = serve_parser.add_argument
    add(
        "--cert-file",
        default=_env("LEOFLOW_WEBHOOK_CERT_FILE"),
        help="serving certificate PEM [LEOFLOW_WEBHOOK_CERT_FILE]",
    )
    add(
        "--key-file",
        default=_env("LEOFLOW_WEBHOOK_KEY_FILE"),
        help="its private key PEM [LEOFLOW_WEBHOOK_KEY_FILE]",
    )
    add(
        "--bind",
        default=_env("LEOFLOW_WEBHOOK_BIND", "127.0.0.1"),
        help="address to listen on [LEOFLOW_WEBHOOK_BIND]",
    )
    add(
        "--port",
        default=_env("LEOFLOW_WEBHOOK_PORT", "8443"),
        help="port (default 8443) [LEOFLOW_WEBHOOK_PORT]",
    )
    add("--agent-image", default=_env("LEOFLOW_AGENT_IMAGE"), help="the agent's image [LEOFLOW_AGENT_IMAGE]")
    add(
        "--controller-addr",
        default=_env("LEOFLOW_CONTROLLER_ADDR"),
        help="host:port the agent reports to [LEOFLOW_CONTROLLER_ADDR]",
    )
    add("--agent-version", default=_env("LEOFLOW_AGENT_VERSION", __version__), help="[LEOFLOW_AGENT_VERSION]")
    add(
        "--image-index",
        default=_env("LEOFLOW_IMAGE_INDEX"),
        help="YAML image -> entrypoint/cmd [LEOFLOW_IMAGE_INDEX]",
    )
    add(
        agent_in_image.FLAG,
        action="append",
        metavar="PREFIX=PATH",
        help="images starting with PREFIX hold the agent at PATH: no init container copies it "
        f"(repeatable) [{agent_in_image.ENV}, entries separated by whitespace]",
    )
    add("--ca-configmap", default=_env("LEOFLOW_CA_CONFIGMAP", "leoflow-ca"), help="[LEOFLOW_CA_CONFIGMAP]")
    add(
        "--token-expiry-seconds",
        default=_env("LEOFLOW_TOKEN_EXPIRY_SECONDS", "3600"),
        help="[LEOFLOW_TOKEN_EXPIRY_SECONDS]",
    )
    add(
        "--exclude-namespace",
        action="append",
        help=f"namespace never injected (repeatable; default {', '.join(DEFAULT_EXCLUDED_NAMESPACES)})",
    )
    add("--cert-check-interval", type=float, default=10.0, help="seconds between certificate file checks")
    serve_parser.set_defaults(handler=run_serve)


def _int(name: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise CommandError(f"{name} must be an integer, got {value!r}", EXIT_USAGE) from None


def run_serve(args: argparse.Namespace) -> int:
    missing = [
        flag
        for flag, value in (
            ("--cert-file", args.cert_file),
            ("--key-file", args.key_file),
            ("--agent-image", args.agent_image),
            ("--controller-addr", args.controller_addr),
        )
        if not value
    ]
    if missing:
        raise CommandError(f"missing {', '.join(missing)} (or their environment variables)", EXIT_USAGE)
    try:
        entrypoints = image_index.load(Path(args.image_index)) if args.image_index else {}
        entries = args.agent_in_image or agent_in_image.from_environment(_env(agent_in_image.ENV))
        injection = InjectionSettings(
            agent_image=args.agent_image,
            controller_addr=args.controller_addr,
            agent_version=args.agent_version,
            ca_configmap=args.ca_configmap or None,
            token_expiry_seconds=_int("--token-expiry-seconds", args.token_expiry_seconds),
            image_entrypoints=entrypoints,
            agent_in_image=agent_in_image.parse(entries),
        )
    except ValueError as err:
        raise CommandError(str(err), EXIT_USAGE) from None
    options = ServeOptions(
        cert_file=Path(args.cert_file),
        key_file=Path(args.key_file),
        host=args.bind,
        port=_int("--port", args.port),
        cert_check_interval=args.cert_check_interval,
    )
    excluded = frozenset(args.exclude_namespace or DEFAULT_EXCLUDED_NAMESPACES)
    try:
        asyncio.run(serve(options, WebhookConfig(injection=injection, excluded_namespaces=excluded)))
    except (ssl.SSLError, OSError) as err:
        raise CommandError(f"webhook cannot start: {err}") from None
    return EXIT_OK

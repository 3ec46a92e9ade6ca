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
from leoflow.agent_inject import InjectionSettings, SettingError
from leoflow.cli import EXIT_OK, EXIT_USAGE, CommandError, checks
from leoflow.webhook import agent_in_image, image_index
from leoflow.webhook.server import ServeOptions, serve
from leoflow.webhook.serving import DEFAULT_EXCLUDED_NAMESPACES, WebhookConfig

# Each flag's environment variable. An error names both, since the value may have come from either.
ENVIRONMENT = {
    "--cert-file": "LEOFLOW_WEBHOOK_CERT_FILE",
    "--key-file": "LEOFLOW_WEBHOOK_KEY_FILE",
    "--bind": "LEOFLOW_WEBHOOK_BIND",
    "--port": "LEOFLOW_WEBHOOK_PORT",
    "--agent-image": "LEOFLOW_AGENT_IMAGE",
    "--controller-addr": "LEOFLOW_CONTROLLER_ADDR",
    "--agent-version": "LEOFLOW_AGENT_VERSION",
    "--image-index": "LEOFLOW_IMAGE_INDEX",
    agent_in_image.FLAG: agent_in_image.ENV,
    "--ca-configmap": "LEOFLOW_CA_CONFIGMAP",
    "--token-expiry-seconds": "LEOFLOW_TOKEN_EXPIRY_SECONDS",
}

# The InjectionSettings fields the flags set, for naming the flag in the settings' own errors.
SETTING_FLAGS = {
    "agent_image": "--agent-image",
    "controller_addr": "--controller-addr",
    "agent_version": "--agent-version",
    "token_expiry_seconds": "--token-expiry-seconds",
    "agent_in_image": agent_in_image.FLAG,
}


def _env(flag: str, default: str | None = None) -> str | None:
    return os.environ.get(ENVIRONMENT[flag], default)


def _named(flag: str) -> str:
    env = ENVIRONMENT.get(flag)
    return f"{flag} (or {env})" if env else flag


def register(subparsers: Any) -> None:
    webhook = subparsers.add_parser("webhook", help="the agent-injection admission webhook")
    actions = webhook.add_subparsers(dest="webhook_command", metavar="ACTION", required=True)
    serve_parser = actions.add_parser(
        "serve",
        help="serve POST /mutate-pods over HTTPS",
        description="Serves AdmissionReview v1 for pods labelled leoflow.io/inject=true. "
        "Each flag falls back to the environment variable in brackets.",
    )

    def add(flag: str, text: str = "", default: str | None = None) -> None:
        serve_parser.add_argument(
            flag, default=_env(flag, default), help=f"{text} [{ENVIRONMENT[flag]}]".lstrip()
        )

    add("--cert-file", "serving certificate PEM")
    add("--key-file", "its private key PEM")
    add("--bind", "address to listen on", "127.0.0.1")
    add("--port", "port (default 8443)", "8443")
    add("--agent-image", "the agent's image")
    add("--controller-addr", "host:port the agent reports to")
    add("--agent-version", default=__version__)
    add("--image-index", "YAML image -> entrypoint/cmd")
    serve_parser.add_argument(
        agent_in_image.FLAG,
        action="append",
        metavar="PREFIX=PATH",
        help="images starting with PREFIX hold the agent at PATH: no init container copies it "
        f"(repeatable) [{agent_in_image.ENV}, entries separated by whitespace]",
    )
    add("--ca-configmap", default="leoflow-ca")
    add("--token-expiry-seconds", default="3600")
    serve_parser.add_argument(
        "--exclude-namespace",
        action="append",
        help=f"namespace never injected (repeatable; default {', '.join(DEFAULT_EXCLUDED_NAMESPACES)})",
    )
    serve_parser.add_argument(
        "--cert-check-interval", type=float, default=10.0, help="seconds between certificate file checks"
    )
    serve_parser.set_defaults(handler=run_serve)


def _int(flag: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise CommandError(f"{_named(flag)} must be an integer, got {value!r}", EXIT_USAGE) from None


def _settings(args: argparse.Namespace) -> InjectionSettings:
    try:
        entrypoints = image_index.load(Path(args.image_index)) if args.image_index else {}
        entries = args.agent_in_image or agent_in_image.from_environment(_env(agent_in_image.FLAG))
        return InjectionSettings(
            agent_image=args.agent_image,
            controller_addr=args.controller_addr,
            agent_version=args.agent_version,
            ca_configmap=args.ca_configmap or None,
            token_expiry_seconds=_int("--token-expiry-seconds", args.token_expiry_seconds),
            image_entrypoints=entrypoints,
            agent_in_image=agent_in_image.parse(entries),
        )
    except SettingError as err:
        flag = SETTING_FLAGS.get(err.setting)
        message = f"{_named(flag)} {err.problem}" if flag else str(err)
        raise CommandError(message, EXIT_USAGE) from None
    except ValueError as err:
        raise CommandError(str(err), EXIT_USAGE) from None


def _check_readable(flag: str, path: Path) -> None:
    # The TLS library's own error would say "No such file or directory" without saying which.
    try:
        with path.open("rb"):
            pass
    except OSError as err:
        raise CommandError(f"{_named(flag)} {path}: cannot read it: {err.strerror}", EXIT_USAGE) from None


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
    # The API server dials a port it was told, so the OS picking one (port 0) would serve no one.
    port = checks.port(_named("--port"), args.port)
    checks.host_port(_named("--controller-addr"), args.controller_addr)
    checks.positive_seconds("--cert-check-interval", args.cert_check_interval)
    injection = _settings(args)
    options = ServeOptions(
        cert_file=Path(args.cert_file),
        key_file=Path(args.key_file),
        host=args.bind,
        port=port,
        cert_check_interval=args.cert_check_interval,
    )
    _check_readable("--cert-file", options.cert_file)
    _check_readable("--key-file", options.key_file)
    excluded = frozenset(args.exclude_namespace or DEFAULT_EXCLUDED_NAMESPACES)
    try:
        asyncio.run(serve(options, WebhookConfig(injection=injection, excluded_namespaces=excluded)))
    except (ssl.SSLError, OSError) as err:
        raise CommandError(f"webhook cannot start: {err}") from None
    return EXIT_OK

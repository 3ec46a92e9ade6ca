"""``leoflow certs generate`` (files for a manifest install) and ``leoflow certs keep`` (the
in-cluster rotation loop: the webhook's Secret and our MutatingWebhookConfiguration's
``caBundle``, and with ``--controller-service`` the controller's agent-endpoint Secret)."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import os
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, config

from leoflow.certs import authority, pemfiles, rotation, syncing
from leoflow.cli import EXIT_OK, EXIT_USAGE, CommandError, checks
from leoflow.install.rendering import CONTROLLER_CA_COMMON_NAME, CONTROLLER_SECRET

FILES = ("ca.crt", "ca.key", "tls.crt", "tls.key")


def register(subparsers: Any) -> None:
    certs = subparsers.add_parser("certs", help="webhook TLS certificates")
    actions = certs.add_subparsers(dest="certs_command", metavar="ACTION", required=True)
    generate = actions.add_parser(
        "generate",
        help="write a self-signed CA and a serving certificate for the webhook Service",
        description="Writes ca.crt, ca.key, tls.crt and tls.key into --out. The serving certificate "
        "covers NAME, NAME.NS, NAME.NS.svc, NAME.NS.svc.cluster.local and every --ip.",
    )
    generate.add_argument("--out", type=Path, required=True, help="directory to write the files into")
    generate.add_argument("--service", required=True, help="the webhook Service's name")
    generate.add_argument("--namespace", required=True, help="the webhook Service's namespace")
    generate.add_argument(
        "--ip", action="append", help="an IP SAN (repeatable; default 127.0.0.1 for a webhook run locally)"
    )
    generate.add_argument("--days", type=int, default=365, help="serving certificate lifetime (default 365)")
    generate.add_argument("--ca-days", type=int, default=3650, help="CA lifetime (default 3650)")
    generate.add_argument("--force", action="store_true", help="overwrite existing files")
    generate.set_defaults(handler=run_generate)

    keep = actions.add_parser(
        "keep",
        help="keep the webhook's and the controller's TLS Secrets rotated (run exactly one)",
        description="Every --interval seconds: issue or renew the CA and serving certificate in the Secret, "
        "and put the CA (plus the previous one during an overlap) into every caBundle of the "
        "MutatingWebhookConfiguration. With --controller-service, the same for the controller's "
        "agent endpoint, whose ca.crt carries the CAs agents must trust. A Secret cert-manager issued "
        "is left alone. Uses the in-cluster service account, else --kubeconfig/KUBECONFIG.",
    )
    keep.add_argument("--namespace", required=True, help="namespace of the Secret and the webhook Service")
    keep.add_argument("--service", required=True, help="the webhook Service's name")
    keep.add_argument(
        "--secret", default="leoflow-webhook-tls", help="Secret name (default leoflow-webhook-tls)"
    )
    keep.add_argument(
        "--webhook-configuration",
        default="leoflow-agent-injector",
        help="MutatingWebhookConfiguration name (default leoflow-agent-injector)",
    )
    keep.add_argument("--ip", action="append", default=[], help="an IP SAN (repeatable)")
    keep.add_argument(
        "--controller-service",
        help="the controller's Service (agent endpoint): also keep --controller-secret (default: do not)",
    )
    keep.add_argument(
        "--controller-secret",
        default=CONTROLLER_SECRET,
        help=f"the controller's TLS Secret name (default {CONTROLLER_SECRET})",
    )
    keep.add_argument("--interval", type=float, default=300.0, help="seconds between rounds (default 300)")
    keep.add_argument(
        "--kubeconfig", default=os.environ.get("KUBECONFIG"), help="outside a cluster [KUBECONFIG]"
    )
    keep.set_defaults(handler=run_keep)


def _check_lifetimes(days: int, ca_days: int, now: datetime.datetime) -> None:
    if days < 1:
        raise CommandError(f"--days must be at least 1, got {days}", EXIT_USAGE)
    longest = (authority.LATEST_NOT_AFTER - now).days
    for flag, value in (("--days", days), ("--ca-days", ca_days)):
        if value > longest:
            raise CommandError(
                f"{flag} {value} reaches past {authority.LATEST_NOT_AFTER:%Y-%m-%d}, the last date a "
                f"certificate can be valid until: at most {longest} days from today",
                EXIT_USAGE,
            )
    if ca_days < days:
        raise CommandError(
            f"--ca-days {ca_days} is shorter than --days {days}: the CA must stay valid as long as "
            "the certificate it signs",
            EXIT_USAGE,
        )


def run_generate(args: argparse.Namespace) -> int:
    ips: list[str] = args.ip if args.ip else ["127.0.0.1"]
    for ip in ips:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise CommandError(f"--ip {ip!r} is not an IP address", EXIT_USAGE) from None
    checks.service_name("--service", args.service)
    checks.namespace("--namespace", args.namespace)
    now = datetime.datetime.now(datetime.UTC)
    _check_lifetimes(args.days, args.ca_days, now)
    if args.out.exists() and not args.out.is_dir():
        raise CommandError(f"--out {args.out} is not a directory", EXIT_USAGE)
    existing = [name for name in FILES if (args.out / name).exists()]
    if existing and not args.force:
        raise CommandError(f"{args.out} already holds {', '.join(existing)}; pass --force to replace them")

    ca = authority.new_ca(
        common_name=rotation.CA_COMMON_NAME, now=now, validity=datetime.timedelta(days=args.ca_days)
    )
    try:
        dns_names = authority.service_dns_names(args.service, args.namespace)
        serving = authority.issue_serving(
            ca,
            dns_names=dns_names,
            ip_addresses=tuple(ips),
            now=now,
            validity=datetime.timedelta(days=args.days),
        )
    except ValueError as err:
        raise CommandError(f"cannot issue the serving certificate: {err}", EXIT_USAGE) from None

    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CommandError(
            f"--out {args.out}: cannot create the directory: {err.strerror}", EXIT_USAGE
        ) from None
    for name, content, mode in (
        ("ca.crt", ca.cert_pem, pemfiles.PUBLIC),
        ("ca.key", ca.key_pem, pemfiles.PRIVATE),
        ("tls.crt", serving.cert_pem, pemfiles.PUBLIC),
        ("tls.key", serving.key_pem, pemfiles.PRIVATE),
    ):
        path = args.out / name
        try:
            pemfiles.write(path, content, mode=mode)
        except OSError as err:
            raise CommandError(f"cannot write {path}: {err.strerror or err}") from None
    print(f"wrote {', '.join(FILES)} to {args.out} for {', '.join((*dns_names, *ips))}")
    return EXIT_OK


async def _keep(args: argparse.Namespace, targets: list[syncing.Target]) -> None:
    if args.kubeconfig:
        api = await config.new_client_from_config(config_file=args.kubeconfig)
    else:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        api = client.ApiClient()
    async with api:
        await syncing.keep_certificates(
            api, targets, policy=rotation.RotationPolicy(), interval=args.interval
        )


def run_keep(args: argparse.Namespace) -> int:
    for ip in args.ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise CommandError(f"--ip {ip!r} is not an IP address", EXIT_USAGE) from None
    checks.positive_seconds("--interval", args.interval)
    checks.namespace("--namespace", args.namespace)
    checks.service_name("--service", args.service)
    if args.controller_service:
        checks.service_name("--controller-service", args.controller_service)
    targets = [
        syncing.Target(
            namespace=args.namespace,
            secret_name=args.secret,
            webhook_configuration=args.webhook_configuration,
            dns_names=authority.service_dns_names(args.service, args.namespace),
            ip_addresses=tuple(args.ip),
        )
    ]
    if args.controller_service:
        if args.controller_secret == args.secret:
            raise CommandError("--controller-secret must differ from --secret", EXIT_USAGE)
        targets.append(
            syncing.Target(
                namespace=args.namespace,
                secret_name=args.controller_secret,
                webhook_configuration=None,
                dns_names=authority.service_dns_names(args.controller_service, args.namespace),
                ca_common_name=CONTROLLER_CA_COMMON_NAME,
            )
        )
    try:
        asyncio.run(_keep(args, targets))
    except config.ConfigException as err:
        raise CommandError(f"no Kubernetes credentials: {err}") from None
    return EXIT_OK

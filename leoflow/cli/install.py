"""``leoflow install --print``: the install manifests with generated certificates, for kubectl."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Any

from leoflow.cli import EXIT_OK, EXIT_USAGE, CommandError, buffered_output, checks
from leoflow.install import manifests, rendering


def register(subparsers: Any) -> None:
    install = subparsers.add_parser(
        "install",
        help="render the cluster install (pipe to kubectl apply -f -)",
        description="Prints the manifests of manifests/ (what `kubectl apply -k manifests/` installs) "
        "with freshly generated webhook and agent-endpoint certificates and the caBundle filled in, "
        "for clusters without cert-manager: leoflow install --print | kubectl apply -f -",
    )
    install.add_argument(
        "--print", dest="print_manifests", action="store_true", help="write the manifests to stdout"
    )
    install.add_argument("--namespace", help="install into this namespace instead of leoflow-system")
    install.add_argument(
        "--manifests",
        type=Path,
        help="the kustomize base to render (default: manifests/ of this source checkout)",
    )
    install.add_argument(
        "--image", help="the controller/webhook image (default ghcr.io/leoflow/leoflow:VERSION)"
    )
    install.add_argument("--agent-image", help="the agent image the webhook injects")
    install.add_argument(
        "--image-pull-policy",
        choices=("Always", "IfNotPresent", "Never"),
        help="for the controller and webhook (Never: images imported into the nodes, as in leoflow dev)",
    )
    install.set_defaults(handler=buffered_output(run_install))


def run_install(args: argparse.Namespace) -> int:
    if not args.print_manifests:
        raise CommandError(
            "leoflow install only prints: run `leoflow install --print | kubectl apply -f -`", EXIT_USAGE
        )
    if args.namespace is not None:
        checks.namespace("--namespace", args.namespace)
    for flag, image in (("--image", args.image), ("--agent-image", args.agent_image)):
        # An empty value would silently fall back to the default image, not the one meant.
        if image is not None and not image.strip():
            raise CommandError(f"{flag} must name an image, got an empty value", EXIT_USAGE)
    directory = args.manifests or manifests.default_directory()
    if directory is None:
        raise CommandError("no manifests/ found next to the package: pass --manifests DIR", EXIT_USAGE)
    try:
        objects = manifests.load_kustomization(directory)
        rendered = rendering.render_install(
            objects,
            namespace=args.namespace,
            now=datetime.datetime.now(datetime.UTC),
            images=rendering.ImageChoice(args.image, args.agent_image, args.image_pull_policy),
        )
    except manifests.ManifestError as err:
        raise CommandError(str(err), EXIT_USAGE) from None
    sys.stdout.write(rendering.dump(rendered))
    return EXIT_OK

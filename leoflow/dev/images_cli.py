"""``leoflow dev image build DIR --tag T``: turn a directory into an image the real node can run.

There is no registry in the dev cluster, so a task image is built from a local directory (its
files become the image's root filesystem, optionally on top of busybox) and, with ``--import``,
loaded straight into the real node's containerd. Pods then use it with ``imagePullPolicy: Never``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from leoflow.cli import EXIT_OK, EXIT_USAGE, CommandError
from leoflow.dev import images
from leoflow.dev.cluster import default_home
from leoflow.dev.containerd import NodePaths


def _build(args: argparse.Namespace) -> int:
    context: Path = args.directory
    try:
        images.validate_tag(args.tag)
        files = images.files_from_directory(context)
        if args.busybox:
            files = {**images.busybox_files(), **files}
        env = [images.PATH_ENV, *args.env]
        for item in args.env:
            if "=" not in item:
                raise CommandError(f"--env {item!r}: expected NAME=VALUE", EXIT_USAGE)
        spec = images.ImageSpec(
            tag=args.tag,
            files=files,
            entrypoint=tuple(shlex.split(args.entrypoint)) if args.entrypoint else (),
            cmd=tuple(shlex.split(args.cmd)) if args.cmd else (),
            env=tuple(env),
            workdir=args.workdir,
        )
        built = images.build_image(spec)
        sys.stdout.write(f"{built.tag}  {built.config_digest}  {built.path}\n")
        if args.import_:
            home: Path = args.home or default_home()
            socket = NodePaths(home).socket
            if not socket.exists():
                raise CommandError(
                    f"no real node running in {home} (no {socket}): run `leoflow dev up` first"
                )
            images.import_image(built, socket)
            sys.stdout.write(f"imported into the real node of {home}\n")
    except images.ImageError as err:
        raise CommandError(str(err), EXIT_USAGE) from err
    return EXIT_OK


def register_image_commands(dev_subparsers: Any) -> None:
    """Adds ``image build`` under ``leoflow dev`` (called from leoflow/cli/dev.py)."""
    image = dev_subparsers.add_parser("image", help="build local images for the real node")
    verbs = image.add_subparsers(dest="image_verb", metavar="VERB")
    image.set_defaults(handler=lambda _args: image.print_help() or EXIT_USAGE)
    build = verbs.add_parser("build", help="build an image tarball from a directory (and import it)")
    build.add_argument("directory", type=Path, help="its files become the image's root filesystem")
    build.add_argument("--tag", required=True, help="image name with an explicit tag, e.g. leoflow.dev/job:1")
    build.add_argument("--busybox", action="store_true", help="put the directory on top of busybox-static")
    build.add_argument("--entrypoint", default="", help="entrypoint, shell-quoted")
    build.add_argument("--cmd", default="", help="default arguments, shell-quoted")
    build.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="repeatable")
    build.add_argument("--workdir", default="/", help="working directory (default /)")
    build.add_argument(
        "--import", dest="import_", action="store_true", help="import into the running real node"
    )
    build.add_argument("--home", type=Path, default=None, help="cluster home for --import")
    build.set_defaults(handler=_build)

"""Resolving the command of a container that has none in its spec.

A container without ``command`` runs its image's ENTRYPOINT, which only the image config knows,
and a registry is never called on the admission path. So the command comes from the pod
(``leoflow.io/entrypoint``) or from the installation's image index; otherwise the pod is denied
with a message that says exactly what to add.

The annotation means "treat this as the container's ``command``": Kubernetes semantics then apply
unchanged (``args``, if any, follow it; the image's CMD is ignored, as it is whenever ``command``
is set). It has two forms:

* a JSON list of strings, used for every selected container that has no command;
* a JSON object from container name to such a list, for pods whose containers differ.

An image index entry carries ENTRYPOINT and CMD, and follows Kubernetes exactly: ENTRYPOINT plus
the container's ``args`` when it has some, otherwise ENTRYPOINT plus CMD.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from leoflow.agent_inject.names import ENTRYPOINT_ANNOTATION
from leoflow.agent_inject.settings import ImageEntrypoint

_FORMS = '["/bin/app", "serve"] or {"<container>": ["/bin/app", "serve"]}'


class EntrypointAnnotationError(ValueError):
    """The ``leoflow.io/entrypoint`` annotation is not one of its two documented forms."""


@dataclass(frozen=True)
class EntrypointAnnotation:
    """The parsed annotation: one command for all containers, or one per container name."""

    for_all: tuple[str, ...] | None = None
    per_container: Mapping[str, tuple[str, ...]] | None = None

    def command_for(self, container: str) -> tuple[str, ...] | None:
        if self.for_all is not None:
            return self.for_all
        if self.per_container is not None:
            return self.per_container.get(container)
        return None


def _string_list(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise EntrypointAnnotationError(
            f"annotation {ENTRYPOINT_ANNOTATION}: {where} must be a non-empty list of strings; "
            f"write it as {_FORMS}"
        )
    return tuple(value)


def parse_annotation(raw: str | None) -> EntrypointAnnotation:
    if raw is None:
        return EntrypointAnnotation()
    try:
        value = json.loads(raw)
    except ValueError as err:
        raise EntrypointAnnotationError(
            f"annotation {ENTRYPOINT_ANNOTATION} is not valid JSON ({err}); write it as {_FORMS}"
        ) from None
    if isinstance(value, dict):
        return EntrypointAnnotation(
            per_container={
                str(name): _string_list(command, f'the entry for container "{name}"')
                for name, command in value.items()
            }
        )
    return EntrypointAnnotation(for_all=_string_list(value, "the value"))


@dataclass(frozen=True)
class Resolved:
    """The full argv a container runs, and where its first part came from."""

    argv: tuple[str, ...]
    source: str


def resolve(
    *,
    name: str,
    image: str,
    command: list[str],
    args: list[str],
    annotation: EntrypointAnnotation,
    index: Mapping[str, ImageEntrypoint],
) -> Resolved | None:
    """The argv the container would run unwrapped, or None when it cannot be known here."""
    if command:
        return Resolved((*command, *args), "spec")
    from_annotation = annotation.command_for(name)
    if from_annotation is not None:
        return Resolved((*from_annotation, *args), "annotation")
    entry = index.get(image)
    if entry is not None:
        return Resolved((*entry.entrypoint, *(args or entry.cmd)), "image-index")
    return None


def missing_command_message(name: str, image: str) -> str:
    return (
        f'container "{name}" (image "{image}") has no command, and the agent must know it to wrap it: '
        f'add command: ["<entrypoint>", ...] to the container, or annotate the pod with '
        f'{ENTRYPOINT_ANNOTATION}: \'{{"{name}": ["<entrypoint>", ...]}}\', '
        f"or add the image to the webhook's image index"
    )

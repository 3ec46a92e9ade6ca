"""What an installation decides about injection, as one explicit, validated value.

The webhook builds it from flags and environment; tests build it directly. It is frozen so one
value can be shared by every concurrent review.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

from leoflow import __version__
from leoflow.agent_inject import agentpath, names
from leoflow.agent_inject.fragments import Fragments

# The API server refuses projected tokens that live shorter than ten minutes.
MIN_TOKEN_EXPIRY_SECONDS = 600


class SettingError(ValueError):
    """One setting cannot work. ``setting`` is the field's name, so a caller that read the value
    from a flag or the environment can say which one; ``problem`` is the rest of the message."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting} {problem}")
        self.setting = setting
        self.problem = problem


@dataclass(frozen=True)
class ImageEntrypoint:
    """An image's ENTRYPOINT and CMD, for containers that rely on them (Argo's image index)."""

    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.entrypoint and not self.cmd:
            raise ValueError("an image entrypoint entry needs an entrypoint or a cmd")


@dataclass(frozen=True)
class InjectionSettings:
    """Everything the mutation needs besides the pod.

    ``agent_image`` and ``controller_addr`` have no sensible default; the paths do. The CA that
    signs the controller's gRPC certificate reaches the pod through a projected ConfigMap
    (``ca_configmap``, optional so a pod still starts before the ConfigMap exists).
    ``agent_in_image`` maps image-reference prefixes to where those images already hold the agent
    (see ``agentpath``): their containers are wrapped with that path and need no init container.
    """

    agent_image: str
    controller_addr: str
    agent_version: str = __version__
    bin_dir: str = "/leoflow/bin"
    # The agent's own defaults; others reach it as env (LEOFLOW_IDENTITY_DIR, LEOFLOW_OUTPUTS_DIR).
    identity_dir: str = names.IDENTITY_DIR
    outputs_dir: str = names.OUTPUTS_DIR
    ca_configmap: str | None = "leoflow-ca"
    token_expiry_seconds: int = 3600
    image_entrypoints: Mapping[str, ImageEntrypoint] = field(default_factory=dict)
    image_pull_policy: str = "IfNotPresent"
    agent_in_image: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.agent_image.strip():
            raise SettingError("agent_image", "must name the agent's container image")
        if not self.controller_addr.strip():
            raise SettingError("controller_addr", "must be host:port of the controller's agent endpoint")
        if not self.agent_version.strip():
            raise SettingError("agent_version", "must not be empty")
        for name in ("bin_dir", "identity_dir", "outputs_dir"):
            value = getattr(self, name)
            if not posixpath.isabs(value) or posixpath.normpath(value) != value:
                raise SettingError(name, f"must be a normalised absolute path, got {value!r}")
        if len({self.bin_dir, self.identity_dir, self.outputs_dir}) != 3:
            raise ValueError("bin_dir, identity_dir and outputs_dir must be three different paths")
        if self.token_expiry_seconds < MIN_TOKEN_EXPIRY_SECONDS:
            raise SettingError(
                "token_expiry_seconds",
                f"must be at least {MIN_TOKEN_EXPIRY_SECONDS}, got {self.token_expiry_seconds}",
            )
        if self.image_pull_policy not in ("Always", "IfNotPresent", "Never"):
            raise SettingError(
                "image_pull_policy", f"must be Always, IfNotPresent or Never, got {self.image_pull_policy!r}"
            )
        for prefix, path in self.agent_in_image.items():
            if not prefix.strip():
                raise SettingError(
                    "agent_in_image", f"entry ={path}: an empty image prefix would match every image"
                )
            reason = agentpath.problem(path, self.mounted_dirs)
            if reason is not None:
                raise SettingError(
                    "agent_in_image",
                    f"entry {prefix}={path}: the path {reason}; write e.g. {prefix}={agentpath.EXAMPLE_PATH}",
                )
        object.__setattr__(self, "image_entrypoints", MappingProxyType(dict(self.image_entrypoints)))
        object.__setattr__(self, "agent_in_image", MappingProxyType(dict(self.agent_in_image)))

    @cached_property
    def fragments(self) -> Fragments:
        """What the mutation adds that these settings alone decide, built on first use."""
        return Fragments.of(self)

    @property
    def mounted_dirs(self) -> tuple[str, str, str]:
        """Where the injection mounts volumes in a wrapped container."""
        return (self.bin_dir, self.identity_dir, self.outputs_dir)

    @cached_property
    def agent_path(self) -> str:
        return posixpath.join(self.bin_dir, "leoflow-agent")

    @property
    def token_file(self) -> str:
        return posixpath.join(self.identity_dir, names.TOKEN_FILE)

    @property
    def ca_file(self) -> str:
        return posixpath.join(self.identity_dir, names.CA_FILE)

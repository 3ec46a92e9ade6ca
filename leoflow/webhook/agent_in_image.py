"""The agent-in-image index as an operator writes it: ``PREFIX=PATH`` entries.

``--agent-in-image registry.example.com/dags/=/usr/local/bin/leoflow-agent`` (repeatable, or
``LEOFLOW_AGENT_IN_IMAGE`` with entries separated by whitespace) says that images whose reference
starts with PREFIX hold the agent at PATH, so their pods need no init container to copy it (see
``leoflow.agent_inject.agentpath``). The form is checked here; the path, by ``InjectionSettings``
like every other setting, and both errors quote the entry.
"""

from __future__ import annotations

from collections.abc import Iterable

from leoflow.agent_inject.agentpath import EXAMPLE_PATH

ENV = "LEOFLOW_AGENT_IN_IMAGE"
FLAG = "--agent-in-image"


class AgentInImageError(ValueError):
    pass


def parse(entries: Iterable[str]) -> dict[str, str]:
    """Prefix -> path; a prefix given twice is an error rather than a silent override."""
    index: dict[str, str] = {}
    for entry in entries:
        prefix, sep, path = entry.partition("=")
        if not sep or not prefix.strip():
            raise AgentInImageError(
                f"{FLAG} {entry!r}: expected IMAGE-PREFIX=PATH, "
                f"e.g. registry.example.com/dags/={EXAMPLE_PATH}"
            )
        if prefix in index and index[prefix] != path:
            raise AgentInImageError(f"{FLAG}: prefix {prefix!r} is given twice ({index[prefix]}, {path})")
        index[prefix] = path
    return index


def from_environment(value: str | None) -> list[str]:
    return value.split() if value else []

"""Where a wrapped container finds the agent: copied in by the init container, or in its image.

Copying the agent costs every pod an init container, and the kubelet notices an init container's
exit only on its next PLEG relist (up to 1 s, about 0.46 s at p50 on the real node). An image
that already holds the agent (``COPY --from=<agent image> /leoflow-agent
/usr/local/bin/leoflow-agent``) needs neither the copy nor the emptyDir it goes into. A pod says
so with ``leoflow.io/agent-path: /usr/local/bin/leoflow-agent``; an installation says so for its
images with an index from image-reference prefix to path (the longest matching prefix wins).

The path is checked the same way wherever it comes from: absolute, clean, no whitespace or
control characters, and not under a directory the agent's own volumes are mounted over (they
would hide it).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping

from leoflow.agent_inject.names import AGENT_PATH_ANNOTATION

EXAMPLE_PATH = "/usr/local/bin/leoflow-agent"


def problem(path: str, mounted_dirs: Iterable[str]) -> str | None:
    """Why ``path`` cannot be the agent's path in a container, or None when it can."""
    if not path:
        return "is empty"
    if any(ch.isspace() or not ch.isprintable() for ch in path):
        return "contains whitespace or control characters"
    if not posixpath.isabs(path):
        return "is not absolute"
    if posixpath.normpath(path) != path or path.startswith("//"):
        return f"is not clean (write {posixpath.normpath('/' + path.lstrip('/'))!r})"
    if path == "/":
        return "names the root directory, not the agent binary"
    for directory in mounted_dirs:
        if path == directory or path.startswith(directory + "/"):
            return f"is under {directory}, where the agent's own volume is mounted and would hide it"
    return None


def annotation_problem(raw: object, mounted_dirs: Iterable[str]) -> str | None:
    """The denial message for a bad ``leoflow.io/agent-path`` value, or None when it is usable."""
    reason = "is not a string" if not isinstance(raw, str) else problem(raw, mounted_dirs)
    if reason is None:
        return None
    return (
        f"annotation {AGENT_PATH_ANNOTATION}: {raw!r} {reason}; write the absolute path of the "
        f"leoflow-agent binary inside the image, e.g. {AGENT_PATH_ANNOTATION}: {EXAMPLE_PATH}, "
        "or remove the annotation to have the agent copied in by an init container"
    )


def for_image(index: Mapping[str, str], image: str) -> str | None:
    """The path of the index entry whose prefix is the longest one ``image`` starts with."""
    best: str | None = None
    for prefix in index:
        if image.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return None if best is None else index[best]

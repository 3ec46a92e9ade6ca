"""What is wrong with a leoflow.yaml and where: one ``Problem`` per finding, reported all at once.

Every stage of the compiler (reading YAML, the model, the graph, templates) appends to the same
list, so the author sees every mistake in one go, each as ``file:line:column: path: message``.
"""

from __future__ import annotations

from dataclasses import dataclass

Path = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class Mark:
    """A 1-based position in the file."""

    line: int
    column: int


@dataclass(frozen=True)
class Problem:
    file: str
    mark: Mark
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.mark.line}:{self.mark.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class CompileError(Exception):
    """The file cannot be compiled; ``problems`` lists every reason, sorted by position."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.mark, p.path, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


def format_path(path: Path) -> str:
    """``("tasks", "extract", "command", 2)`` as ``tasks.extract.command[2]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text

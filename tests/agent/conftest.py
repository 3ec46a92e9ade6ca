"""Fixtures for tests that run the real leoflow-agent binary (``agent_binary``, built once per
session by tests/conftest.py with the same flags as ``make agent``)."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from leoflow.agent_inject import names

REPO = Path(__file__).resolve().parents[2]

# The task's identity, as the webhook's env used to give it and as the pod's files now hold it.
IDENTITY_ENV = {
    "LEOFLOW_POD_NAME": "etl-extract-1",
    "LEOFLOW_POD_NAMESPACE": "team-a",
    "LEOFLOW_POD_UID": "0b6f4a9e-uid",
    "LEOFLOW_DAG": "etl",
    "LEOFLOW_RUN": "etl-20261124",
    "LEOFLOW_TASK": "extract",
    "LEOFLOW_ATTEMPT": "2",
}
POD_FIELDS = {
    "metadata.name": IDENTITY_ENV["LEOFLOW_POD_NAME"],
    "metadata.namespace": IDENTITY_ENV["LEOFLOW_POD_NAMESPACE"],
    "metadata.uid": IDENTITY_ENV["LEOFLOW_POD_UID"],
    # The kubelet's rendering of a label map: sorted key="quoted value" lines, no final newline.
    "metadata.labels": "\n".join(
        f"{label}={json.dumps(IDENTITY_ENV[var])}"
        for var, label in sorted(names.IDENTITY_LABELS, key=lambda p: p[1])
    ),
}


def identity_volume(directory: Path, token: str) -> Path:
    """The leoflow-identity volume as the kubelet fills it from the webhook's projected sources."""
    directory.mkdir(exist_ok=True)
    for path, field_path in names.DOWNWARD_FILES:
        (directory / path).write_text(POD_FIELDS[field_path])
    (directory / names.TOKEN_FILE).write_text(token)
    return directory


@dataclass
class AgentRun:
    code: int
    stdout: str
    stderr: str
    termination: str


@dataclass
class AgentRunner:
    """Runs ``leoflow-agent run`` with a task identity in the environment, as an earlier webhook
    set it, or with ``identity_files`` in the pod's identity volume, as the webhook now projects
    it; ``extra_env`` is added either way."""

    binary: Path
    workdir: Path
    identity_files: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        outputs = self.workdir / "outputs"
        outputs.mkdir(exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LEOFLOW_CONTAINER": "main",
            "LEOFLOW_OUTPUTS_DIR": str(outputs),
            "LEOFLOW_TERMINATION_LOG": str(self.workdir / "termination-log"),
        }
        if self.identity_files:
            env["LEOFLOW_IDENTITY_DIR"] = str(identity_volume(self.workdir / "identity", "projected-token"))
        else:
            token = self.workdir / "token"
            token.write_text("projected-token\n")
            env |= {"LEOFLOW_TOKEN_FILE": str(token), **IDENTITY_ENV}
        return env | self.extra_env

    async def run(
        self, *args: str, addr: str | None = None, insecure: bool = True, bound: float = 60
    ) -> AgentRun:
        env = self.env()
        if addr is not None:
            env["LEOFLOW_CONTROLLER_ADDR"] = addr
        flags = ["--insecure"] if insecure else []
        proc = await asyncio.create_subprocess_exec(
            str(self.binary),
            "run",
            *flags,
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        # A hang guard, not a measurement: the agent must never hold the pod this long.
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout=bound)
        termination = await asyncio.to_thread(_read_if_present, Path(env["LEOFLOW_TERMINATION_LOG"]))
        return AgentRun(
            code=proc.returncode if proc.returncode is not None else -1,
            stdout=stdout.decode(),
            stderr=stderr.decode(),
            termination=termination,
        )


@pytest.fixture
def agent(agent_binary: Path, tmp_path: Path) -> AgentRunner:
    return AgentRunner(agent_binary, tmp_path)


def _read_if_present(path: Path) -> str:
    return path.read_text() if path.exists() else ""

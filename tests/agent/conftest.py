"""Fixtures for tests that run the real leoflow-agent binary (``agent_binary``, built once per
session by tests/conftest.py with the same flags as ``make agent``)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass
class AgentRun:
    code: int
    stdout: str
    stderr: str
    termination: str


@dataclass
class AgentRunner:
    """Runs ``leoflow-agent run`` with a task identity in the environment, as the webhook sets it."""

    binary: Path
    workdir: Path

    def env(self) -> dict[str, str]:
        token = self.workdir / "token"
        token.write_text("projected-token\n")
        outputs = self.workdir / "outputs"
        outputs.mkdir(exist_ok=True)
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LEOFLOW_TOKEN_FILE": str(token),
            "LEOFLOW_POD_NAME": "etl-extract-1",
            "LEOFLOW_POD_NAMESPACE": "team-a",
            "LEOFLOW_POD_UID": "0b6f4a9e-uid",
            "LEOFLOW_CONTAINER": "main",
            "LEOFLOW_DAG": "etl",
            "LEOFLOW_RUN": "etl-20261124",
            "LEOFLOW_TASK": "extract",
            "LEOFLOW_ATTEMPT": "2",
            "LEOFLOW_OUTPUTS_DIR": str(outputs),
            "LEOFLOW_TERMINATION_LOG": str(self.workdir / "termination-log"),
        }

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

"""The real agent runner of tests/agent, for the agent server's tests (``agent_binary`` itself is a
session fixture in tests/conftest.py)."""

from __future__ import annotations

from ...agent.conftest import AgentRunner, agent

__all__ = ["AgentRunner", "agent"]

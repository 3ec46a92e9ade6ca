"""The real leoflow-agent binary, built once per session the way tests/agent builds it."""

from __future__ import annotations

from ...agent.conftest import AgentRunner, agent, agent_binary

__all__ = ["AgentRunner", "agent", "agent_binary"]

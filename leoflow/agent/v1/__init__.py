"""Generated stubs for leoflow.agent.v1 (see proto/leoflow/agent/v1/agent.proto)."""

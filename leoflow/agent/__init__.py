"""The agent protocol as seen from Python: generated gRPC stubs for leoflow-agent's reports.

The code under ``leoflow.agent.v1`` is generated from ``proto/leoflow/agent/v1/agent.proto`` by
``hack/proto.sh`` and committed; never edit it by hand.
"""

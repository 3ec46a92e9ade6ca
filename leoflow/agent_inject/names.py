"""The names an injected pod carries: labels, annotations, containers, volumes, env.

They are the contract between the webhook, the controller (which sets the labels) and the agent
(which reads the env), so they live in one place.
"""

from __future__ import annotations

INJECT_LABEL = "leoflow.io/inject"
DAG_LABEL = "leoflow.io/dag"
RUN_LABEL = "leoflow.io/run"
TASK_LABEL = "leoflow.io/task"
ATTEMPT_LABEL = "leoflow.io/attempt"
IDENTITY_LABELS: tuple[tuple[str, str], ...] = (
    ("LEOFLOW_DAG", DAG_LABEL),
    ("LEOFLOW_RUN", RUN_LABEL),
    ("LEOFLOW_TASK", TASK_LABEL),
    ("LEOFLOW_ATTEMPT", ATTEMPT_LABEL),
)

VERSION_ANNOTATION = "leoflow.io/agent-version"
CONTAINERS_ANNOTATION = "leoflow.io/containers"
ENTRYPOINT_ANNOTATION = "leoflow.io/entrypoint"
AGENT_PATH_ANNOTATION = "leoflow.io/agent-path"

INIT_CONTAINER = "leoflow-agent-init"
BIN_VOLUME = "leoflow-agent"
IDENTITY_VOLUME = "leoflow-identity"
OUTPUTS_VOLUME = "leoflow-outputs"
AGENT_BINARY = "leoflow-agent"
IMAGE_AGENT_PATH = "/leoflow-agent"

TOKEN_AUDIENCE = "leoflow"
TOKEN_FILE = "token"
CA_FILE = "ca.crt"

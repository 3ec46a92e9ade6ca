"""The names an injected pod carries: labels, annotations, containers, volumes, env.

They are the contract between the webhook, the controller (which sets the labels) and the agent
(which reads the identity files and the env; agent/internal/podlayout holds its side), so they
live in one place.
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

# Where the agent looks when no env says otherwise: the identity volume and the outputs emptyDir.
IDENTITY_DIR = "/var/run/secrets/leoflow"
OUTPUTS_DIR = "/leoflow/outputs"
# The pod's own fields the agent needs: the env that names each (as earlier versions set it), and
# the file of the identity volume that holds it now.
POD_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("LEOFLOW_POD_NAME", "pod-name", "metadata.name"),
    ("LEOFLOW_POD_NAMESPACE", "pod-namespace", "metadata.namespace"),
    ("LEOFLOW_POD_UID", "pod-uid", "metadata.uid"),
)
# The files of the identity volume, and the downward-API field of each; the identity labels are
# read from the one labels file.
TOKEN_FILE = "token"
CA_FILE = "ca.crt"
LABELS_FILE = "labels"
DOWNWARD_FILES: tuple[tuple[str, str], ...] = (
    *((file, field) for _, file, field in POD_FIELDS),
    (LABELS_FILE, "metadata.labels"),
)

# The env the agent reads, when set, in preference to the files and defaults above.
CONTROLLER_ADDR_ENV = "LEOFLOW_CONTROLLER_ADDR"
CONTAINER_ENV = "LEOFLOW_CONTAINER"
IDENTITY_DIR_ENV = "LEOFLOW_IDENTITY_DIR"
OUTPUTS_DIR_ENV = "LEOFLOW_OUTPUTS_DIR"
TOKEN_FILE_ENV = "LEOFLOW_TOKEN_FILE"
CA_FILE_ENV = "LEOFLOW_CA_FILE"

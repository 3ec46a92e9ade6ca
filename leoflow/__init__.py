"""Leoflow: a Kubernetes-native DAG orchestrator with one pod per task attempt.

The package is split by concept (see DESIGN.md): ``spec`` compiles leoflow.yaml, ``controller``
runs DAGRuns, ``webhook`` and ``agent_inject`` put the agent into task pods, ``dev`` runs a real
local cluster, ``cli`` is the ``leoflow`` command.
"""

__version__ = "0.1.0"

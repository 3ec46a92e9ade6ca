"""Agent injection as a pure function: a pod in, the mutated pod and its JSON Patch out.

The webhook serves it, and anything else that needs to know what an injected pod looks like (the
controller, a CLI preview, the tests) calls the same function. Nothing here does I/O or imports a
Kubernetes client, so every rule can be driven exhaustively by unit and property tests.
"""

from leoflow.agent_inject.mutation import Denial, Injection, inject
from leoflow.agent_inject.settings import ImageEntrypoint, InjectionSettings, SettingError

__all__ = ["Denial", "ImageEntrypoint", "Injection", "InjectionSettings", "SettingError", "inject"]

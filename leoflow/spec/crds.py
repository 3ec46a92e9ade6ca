"""The CustomResourceDefinitions for DAG and DAGRun, generated from ``leoflow.spec.resources``.

One source of truth: the pydantic models that the compiler emits and the controller reads are
turned into structural OpenAPI v3 schemas here, and ``manifests/crds/`` holds the output.
``python -m leoflow.spec.crds --write`` regenerates the files; ``--check`` exits 1 when the
committed files differ from what the models say (a unit test runs the same comparison).

Structural-schema rules applied: every node has a type; ``$ref`` is inlined; ``X | None`` becomes
``nullable``; pydantic's ``additionalProperties: false``, titles and defaults are dropped (defaults
would make the API server change what was applied); free-form maps get
``x-kubernetes-preserve-unknown-fields``; quantities are ``x-kubernetes-int-or-string``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from leoflow import kubeyaml
from leoflow.spec.fields import QUANTITY
from leoflow.spec.resources import GROUP, VERSION, DagRunSpec, DagRunStatus, DagSpec, DagStatus

HEADER = "# Generated from leoflow/spec/resources.py by `python -m leoflow.spec.crds --write`; do not edit.\n"
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "manifests" / "crds"
_KEEP = {
    "type",
    "properties",
    "required",
    "items",
    "enum",
    "description",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "additionalProperties",
    "nullable",
}


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if node.get("x-free-form"):
        out: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        if "description" in node:
            out["description"] = node["description"]
        return _nullable_if(node, out)
    if node.get("x-quantity-map"):
        quantity = {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY.pattern,
            "x-kubernetes-int-or-string": True,
        }
        return {"type": "object", "additionalProperties": quantity}
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        nullable = len(options) < len(node["anyOf"])
        if len(options) != 1:
            raise ValueError(f"cannot express a union in a structural schema: {node}")
        out = _structural({**options[0], **{k: v for k, v in node.items() if k != "anyOf"}}, defs)
        if nullable:
            out["nullable"] = True
        return out
    if "const" in node:
        node = {**node, "enum": [node["const"]]}
    out = {k: v for k, v in node.items() if k in _KEEP}
    if "properties" in out:
        out["properties"] = {name: _structural(child, defs) for name, child in out["properties"].items()}
        out.pop("additionalProperties", None)
    elif isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _structural(out["additionalProperties"], defs)
    elif out.get("additionalProperties") is False:
        out.pop("additionalProperties")
    if "items" in out:
        out["items"] = _structural(out["items"], defs)
    return out


def _nullable_if(node: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    if any(o.get("type") == "null" for o in node.get("anyOf", [])):
        out["nullable"] = True
    return out


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(mode="serialization")
    return _structural(raw, raw.get("$defs", {}))


def _object_schema(spec: type[BaseModel], status: type[BaseModel], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": schema_of(spec),
            "status": schema_of(status),
        },
    }


def _crd(
    *, kind: str, plural: str, short_names: list[str], schema: dict[str, Any], columns: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "leoflow"}},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["leoflow"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD object."""
    dag = _crd(
        kind="DAG",
        plural="dags",
        short_names=["lfdag"],
        schema=_object_schema(DagSpec, DagStatus, "A compiled leoflow.yaml: tasks and how to run them."),
        columns=[
            {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule.cron"},
            {"name": "Image", "type": "string", "jsonPath": ".spec.image"},
            {"name": "Definition", "type": "string", "jsonPath": ".spec.definitionHash", "priority": 1},
            {"name": "Last Scheduled", "type": "date", "jsonPath": ".status.lastScheduleTime", "priority": 1},
            _AGE,
        ],
    )
    run = _crd(
        kind="DAGRun",
        plural="dagruns",
        short_names=["lfrun"],
        schema=_object_schema(DagRunSpec, DagRunStatus, "One run of a DAG."),
        columns=[
            {"name": "DAG", "type": "string", "jsonPath": ".spec.dagName"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
            {"name": "Logical Date", "type": "string", "jsonPath": ".spec.logicalDate", "priority": 1},
            {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
            _AGE,
        ],
    )
    return {f"dags.{GROUP}.yaml": dag, f"dagruns.{GROUP}.yaml": run}


def rendered() -> dict[str, str]:
    return {name: HEADER + kubeyaml.dump(obj, width=110) for name, obj in crds().items()}


def stale(directory: Path) -> list[str]:
    """Files in ``directory`` that are missing or differ from the generated CRDs."""
    out = []
    for name, text in rendered().items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            out.append(str(path))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leoflow.spec.crds", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate the CRD files")
    mode.add_argument("--check", action="store_true", help="exit 1 if the committed CRDs are stale")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args(argv)
    if args.write:
        args.dir.mkdir(parents=True, exist_ok=True)
        for name, text in rendered().items():
            (args.dir / name).write_text(text)
        return 0
    outdated = stale(args.dir)
    for path in outdated:
        sys.stderr.write(f"{path} is out of date: run python -m leoflow.spec.crds --write\n")
    return 1 if outdated else 0


if __name__ == "__main__":
    raise SystemExit(main())

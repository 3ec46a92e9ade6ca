"""The committed example files stay what the compiler produces, so kubectl users apply the truth."""

from __future__ import annotations

from pathlib import Path

import yaml

from leoflow.spec.compiler import compile_path
from leoflow.spec.resources import DagRunSpec

DEMO = Path(__file__).resolve().parents[3] / "examples" / "etl" / "demo"


def test_compiled_demo_dag_matches_its_leoflow_yaml() -> None:
    """Regenerate with: leoflow compile examples/etl/demo/leoflow.yaml > examples/etl/demo/dag.yaml"""
    committed = yaml.safe_load((DEMO / "dag.yaml").read_text())
    assert committed == compile_path(DEMO / "leoflow.yaml").resource()


def test_demo_run_names_the_demo_dag_and_a_declared_param() -> None:
    run = yaml.safe_load((DEMO / "run.yaml").read_text())
    spec = DagRunSpec.model_validate(run["spec"])
    dag = compile_path(DEMO / "leoflow.yaml")
    assert spec.dagName == dag.name == run["metadata"]["labels"]["leoflow.io/dag"]
    assert set(spec.params) <= {p.name for p in dag.spec.params}

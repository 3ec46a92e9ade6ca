from __future__ import annotations

from typing import Any

from leoflow.spec import crds


def _walk(node: dict[str, Any], path: str) -> list[str]:
    """Violations of the structural-schema rules the API server enforces."""
    found = []
    free = node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
    if "type" not in node and not free:
        found.append(f"{path}: no type")
    if "$ref" in node:
        found.append(f"{path}: $ref")
    if "properties" in node and "additionalProperties" in node:
        found.append(f"{path}: properties together with additionalProperties")
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        found.append(f"{path}: anyOf")
    for name, child in node.get("properties", {}).items():
        found += _walk(child, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        found += _walk(node["additionalProperties"], f"{path}[*]")
    if "items" in node:
        found += _walk(node["items"], f"{path}[]")
    return found


def test_committed_crds_match_the_models() -> None:
    assert crds.stale(crds.DEFAULT_DIR) == [], "run: python -m leoflow.spec.crds --write"


def test_generated_schemas_are_structural() -> None:
    for name, crd in crds.crds().items():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert _walk(schema, name) == []


def test_crds_have_status_subresource_printer_columns_and_short_names() -> None:
    by_kind = {crd["spec"]["names"]["kind"]: crd for crd in crds.crds().values()}
    run = by_kind["DAGRun"]["spec"]
    version = run["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert {c["name"] for c in version["additionalPrinterColumns"]} >= {"Phase", "Progress", "Age"}
    assert run["names"]["shortNames"] == ["lfrun"]
    dag_columns = {c["name"] for c in by_kind["DAG"]["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert dag_columns >= {"Schedule", "Image", "Age"}


def test_quantities_are_int_or_string_and_affinity_is_free_form() -> None:
    spec = crds.crds()["dags.leoflow.io.yaml"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    profile = spec["properties"]["spec"]["properties"]["profiles"]["items"]["properties"]
    quantity = profile["resources"]["properties"]["requests"]["additionalProperties"]
    assert quantity["x-kubernetes-int-or-string"] is True
    assert profile["affinity"]["x-kubernetes-preserve-unknown-fields"] is True


def test_check_mode_reports_a_stale_file(tmp_path: Any) -> None:
    assert crds.main(["--write", "--dir", str(tmp_path)]) == 0
    assert crds.main(["--check", "--dir", str(tmp_path)]) == 0
    (tmp_path / "dags.leoflow.io.yaml").write_text("stale\n")
    assert crds.main(["--check", "--dir", str(tmp_path)]) == 1

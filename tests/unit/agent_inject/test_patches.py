from __future__ import annotations

from typing import Any

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st

from leoflow.agent_inject import patches

scalars = st.none() | st.booleans() | st.integers() | st.text(alphabet="ab~/0 1", max_size=4)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(alphabet="ab~/01", max_size=4), inner, max_size=4)
    ),
    max_leaves=25,
)
objects = st.dictionaries(st.text(alphabet="ab~/01", max_size=4), json_values, max_size=5)


def test_keys_escape_tilde_before_slash() -> None:
    assert patches.escape("a/b~c") == "a~1b~0c"
    assert patches.escape("~1") == "~01"
    assert patches.diff({"m": {}}, {"m": {"x/~1": 1}}) == [{"op": "add", "path": "/m/x~1~01", "value": 1}]


def test_absent_containers_are_added_whole_and_changed_lists_replaced_whole() -> None:
    before = {"spec": {"containers": [{"name": "a", "command": ["x"], "args": ["y"]}]}}
    after = {
        "spec": {
            "containers": [{"name": "a", "command": ["agent", "run", "--", "x", "y"]}],
            "initContainers": [{"name": "init"}],
        }
    }
    assert patches.diff(before, after) == [
        {"op": "replace", "path": "/spec/containers/0/command", "value": ["agent", "run", "--", "x", "y"]},
        {"op": "remove", "path": "/spec/containers/0/args"},
        {"op": "add", "path": "/spec/initContainers", "value": [{"name": "init"}]},
    ]


def test_equal_documents_give_an_empty_patch() -> None:
    doc = {"a": [1, {"b": None}], "c": True}
    assert patches.diff(doc, {"a": [1, {"b": None}], "c": True}) == []


def test_boolean_and_integer_are_different_values() -> None:
    assert patches.diff({"a": True}, {"a": 1}) == [{"op": "replace", "path": "/a", "value": 1}]


@settings(max_examples=500, deadline=None)
@given(objects, objects)
def test_applying_the_diff_gives_the_target_for_any_two_documents(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    assert jsonpatch.apply_patch(before, patches.diff(before, after)) == after

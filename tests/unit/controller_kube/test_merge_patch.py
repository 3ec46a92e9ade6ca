"""Status updates send only what changed."""

from __future__ import annotations

from leoflow.controller.kube.writer import merge_patch


def test_equal_documents_need_no_patch() -> None:
    assert merge_patch({"a": {"b": 1}}, {"a": {"b": 1}}) is None


def test_only_changed_leaves_are_sent() -> None:
    old = {"phase": "Running", "tasks": {"a": "Succeeded", "b": "Running"}, "progress": "1/2"}
    new = {"phase": "Running", "tasks": {"a": "Succeeded", "b": "Succeeded"}, "progress": "2/2"}
    assert merge_patch(old, new) == {"tasks": {"b": "Succeeded"}, "progress": "2/2"}


def test_removed_keys_are_nulled_and_lists_replaced_whole() -> None:
    old = {"message": "x", "conditions": [{"type": "A"}]}
    new = {"conditions": [{"type": "A"}, {"type": "B"}]}
    assert merge_patch(old, new) == {"message": None, "conditions": [{"type": "A"}, {"type": "B"}]}

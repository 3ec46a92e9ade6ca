"""One table says which API failures are worth retrying."""

from __future__ import annotations

import json

import pytest
from prometheus_client import REGISTRY

from leoflow.controller.kube.errors import ErrorKind, classify, error_from_response, error_from_status_object


@pytest.mark.parametrize("code", [409, 410, 429, 500, 502, 503, 504, 0])
def test_transient_codes(code: int) -> None:
    assert classify(code) is ErrorKind.TRANSIENT


@pytest.mark.parametrize("code", [400, 401, 403, 404, 422])
def test_permanent_codes(code: int) -> None:
    assert classify(code) is ErrorKind.PERMANENT


def test_exceeded_quota_is_capacity_not_a_permanent_refusal() -> None:
    message = 'pods "x" is forbidden: exceeded quota: q, requested: pods=1, used: pods=5, limited: pods=5'
    assert classify(403, "Forbidden", message) is ErrorKind.TRANSIENT
    assert classify(403, "Forbidden", "User cannot create pods") is ErrorKind.PERMANENT


def test_status_body_reason_and_retry_after_are_read_and_counted() -> None:
    before = REGISTRY.get_sample_value("leoflow_api_errors_total", {"verb": "create", "code": "409"}) or 0
    body = json.dumps(
        {"kind": "Status", "code": 409, "reason": "AlreadyExists", "message": 'pods "p" already exists'}
    )
    error = error_from_response("create", 409, {"Retry-After": "2"}, body.encode())
    assert (error.reason, error.message, error.retry_after) == (
        "AlreadyExists",
        'pods "p" already exists',
        2.0,
    )
    assert error.already_exists and not error.conflict
    after = REGISTRY.get_sample_value("leoflow_api_errors_total", {"verb": "create", "code": "409"})
    assert after == before + 1


def test_conflict_is_not_already_exists() -> None:
    error = error_from_response(
        "patch", 409, {}, b'{"reason": "Conflict", "message": "the object has been modified"}'
    )
    assert error.conflict and not error.already_exists and error.transient


def test_non_json_error_body_keeps_the_text() -> None:
    error = error_from_response("get", 502, {}, b"<html>bad gateway</html>")
    assert error.message == "<html>bad gateway</html>" and error.transient


def test_watch_error_event_becomes_a_gone_error() -> None:
    error = error_from_status_object(
        "watch", {"code": 410, "reason": "Expired", "message": "too old resource version: 1 (200)"}
    )
    assert error.gone and error.transient

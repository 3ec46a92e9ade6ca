"""The sensor fields of leoflow.yaml: what they compile to, and bad values named with their line."""

from __future__ import annotations

import textwrap

import pytest

from leoflow.spec.compiler import compile_text
from leoflow.spec.resources import DagSpec
from tests.unit.spec.dagfiles import HEAD, only_problem

HTTP_SENSOR = """\
tasks:
  wait:
    sensor:
      http:
        url: https://exports.example/status
        headers: {Accept: application/json, X-Day: "{{ logical_date }}"}
        headersFrom:
          Authorization: {secret: exports-api, key: token, prefix: "Bearer "}
        requestTimeout: 5s
      pokeInterval: 10s
      pokeBackoff: 1.5
      maxPokeInterval: 5m
  other:
    sensor:
      dagRun: {dag: upstream, namespace: team-b}
"""


def test_http_auth_timeouts_and_backoff_compile_into_the_dag_resource() -> None:
    compiled = compile_text(HEAD + HTTP_SENSOR)
    sensor = compiled.spec.tasks[compiled.spec.task_index()["wait"]].sensor
    assert sensor is not None and sensor.http is not None
    assert sensor.http.headers == {"Accept": "application/json", "X-Day": "{{ logical_date }}"}
    secret = sensor.http.headersFrom["Authorization"]
    assert (secret.secret, secret.key, secret.prefix) == ("exports-api", "token", "Bearer ")
    assert sensor.http.requestTimeoutSeconds == 5
    assert (sensor.pokeIntervalSeconds, sensor.pokeBackoff, sensor.maxPokeIntervalSeconds) == (10, 1.5, 300)
    other = compiled.spec.tasks[compiled.spec.task_index()["other"]].sensor
    assert other is not None and other.dagRun is not None and other.dagRun.namespace == "team-b"
    stored = compiled.resource("ns")["spec"]
    assert DagSpec.model_validate(stored) == compiled.spec, "the API server's copy reads back the same"


def test_sensors_without_the_new_fields_keep_their_definition_hash() -> None:
    text = HEAD + "tasks:\n  wait: {sensor: {http: {url: 'https://x/'}, pokeInterval: 10s}}\n"
    stored = compile_text(text).resource("ns")["spec"]["tasks"][0]["sensor"]
    assert stored == {"http": {"url": "https://x/"}, "pokeIntervalSeconds": 10}


def sensor_problem(sensor: str) -> tuple[int, str, str]:
    p = only_problem(HEAD + f"tasks:\n  wait:\n    sensor:\n{sensor}")
    return p.mark.line, p.path, p.message


@pytest.mark.parametrize(
    ("sensor", "line", "path", "message"),
    [
        (
            "      http: {url: 'https://x/', headers: {'Bad Name': v}}\n",
            6,
            "tasks.wait.sensor.http.headers.Bad Name",
            "is not an HTTP header name",
        ),
        (
            "      http: {url: 'https://x/', headers: {X-A: \"a\\r\\nX-Evil: 1\"}}\n",
            6,
            "tasks.wait.sensor.http.headers.X-A",
            "cannot contain a line break",
        ),
        (
            "      http:\n        url: 'https://x/'\n        headersFrom: {X-Key: {secret: s}}\n",
            8,
            "tasks.wait.sensor.http.headersFrom.X-Key.key",
            "missing required field 'key'",
        ),
        (
            "      http:\n        url: 'https://x/'\n        requestTimeout: 0s\n",
            8,
            "tasks.wait.sensor.http.requestTimeout",
            "greater than or equal to 1",
        ),
        (
            "      http:\n        url: 'https://x/'\n        requestTimeout: 1h\n",
            8,
            "tasks.wait.sensor.http.requestTimeout",
            "less than or equal to 600",
        ),
        (
            "      http: {url: 'https://x/'}\n      pokeBackoff: 0.5\n",
            7,
            "tasks.wait.sensor.pokeBackoff",
            "greater than or equal to 1",
        ),
        (
            "      dagRun: {dag: up, namespace: Team_B}\n",
            6,
            "tasks.wait.sensor.dagRun.namespace",
            "is not a DNS-1123 label",
        ),
        (
            "      time: {delay: 1m}\n      pokeInterval: 0s\n",
            7,
            "tasks.wait.sensor.pokeInterval",
            "must be at least 1s: 0 would poke in a busy loop",
        ),
        (
            "      time: {delay: 1m}\n      maxPokeInterval: 0\n",
            7,
            "tasks.wait.sensor.maxPokeInterval",
            "must be at least 1s",
        ),
        (
            "      time: {delay: 1m}\n      timeout: 0\n",
            7,
            "tasks.wait.sensor.timeout",
            "must be at least 1s: a sensor with timeout 0 times out before its first poke",
        ),
        (
            "      http: {url: not a url}\n",
            6,
            "tasks.wait.sensor.http.url",
            "'not a url' is not an absolute http:// or https:// URL",
        ),
        (
            "      http: {url: 'ftp://x/'}\n",
            6,
            "tasks.wait.sensor.http.url",
            "is not an absolute http:// or https:// URL",
        ),
        (
            "      http:\n        url: 'https://x/'\n        expectStatus: [200, 999]\n",
            8,
            "tasks.wait.sensor.http.expectStatus[1]",
            "999 is not an HTTP status code (100 to 599)",
        ),
        (
            "      http: {url: 'https://x/', expectStatus: []}\n",
            6,
            "tasks.wait.sensor.http.expectStatus",
            "at least 1 item",
        ),
        (
            "      http: {url: 'https://x/', expectStatus: [-1]}\n",
            6,
            "tasks.wait.sensor.http.expectStatus[0]",
            "-1 is not an HTTP status code",
        ),
        (
            "      kubernetes: {apiVersion: batch/v1, kind: Job, name: X Y}\n",
            6,
            "tasks.wait.sensor.kubernetes.name",
            "'X Y' is not a Kubernetes object name",
        ),
    ],
)
def test_bad_sensor_fields_are_named_with_their_line(sensor: str, line: int, path: str, message: str) -> None:
    found_line, found_path, found_message = sensor_problem(sensor)
    assert (found_line, found_path) == (line, path)
    assert message in found_message


def test_a_header_set_twice_is_named() -> None:
    line, path, message = sensor_problem(
        "      http:\n        url: 'https://x/'\n        headers: {Authorization: a}\n"
        "        headersFrom: {authorization: {secret: s, key: k}}\n"
    )
    assert (line, path) == (7, "tasks.wait.sensor.http")
    assert "header 'authorization' is set twice" in message


def test_templated_url_and_object_name_are_left_to_the_controller_to_check_once_rendered() -> None:
    text = HEAD + textwrap.dedent(
        """\
        params: {base: {default: "https://x"}, job: {default: etl}}
        tasks:
          web: {sensor: {http: {url: "{{ params.base }}/ready"}}}
          host: {sensor: {http: {url: "https://{{ params.job }}.example/ready"}}}
          job:
            sensor: {kubernetes: {apiVersion: batch/v1, kind: Job, name: "{{ params.job }}-{{ run_id }}"}}
        """
    )
    assert len(compile_text(text).spec.tasks) == 3

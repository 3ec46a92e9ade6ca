"""``leoflow controller run`` flags reach the settings the controller and its sensor engine run with,
and a bad value is a usage error (exit 2) that names the flag."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes_asyncio.client import ApiClient, Configuration
from prometheus_client import CollectorRegistry

from leoflow.cli import EXIT_USAGE, CommandError, build_parser, main
from leoflow.cli.controller import controller_settings
from leoflow.controller.app import Controller, ControllerSettings
from leoflow.controller.sensors.engine import EngineOptions
from leoflow.controller.sensors.http import HttpOptions


def settings_for(*flags: str) -> ControllerSettings:
    return controller_settings(build_parser().parse_args(["controller", "run", *flags]))


def test_sensor_settings_default_to_the_engine_defaults() -> None:
    settings = settings_for()
    assert settings.sensors == EngineOptions()
    assert settings.sensor_progress_period == ControllerSettings.sensor_progress_period
    assert settings.sensor_progress_batch == ControllerSettings.sensor_progress_batch


def test_pods_are_created_ahead_only_with_an_agent_server_to_release_them() -> None:
    assert settings_for().reconcile.plan.prestart is True
    assert settings_for("--no-agent-server").reconcile.plan.prestart is False


def test_a_cluster_admin_can_turn_prestart_off_for_every_dag() -> None:
    assert settings_for("--no-prestart").reconcile.plan.prestart is False


def test_quota_wait_reaches_the_reconciler_and_a_bad_one_names_the_flag() -> None:
    assert settings_for("--quota-wait=30").reconcile.quota_wait == 30.0
    assert settings_for().reconcile.quota_wait == 600.0
    with pytest.raises(CommandError, match="--quota-wait must be a number of seconds >= 0, got -1"):
        settings_for("--quota-wait=-1")


def test_sensor_flags_reach_the_settings() -> None:
    settings = settings_for(
        "--sensor-http-per-host=3", "--sensor-progress-period=7.5", "--sensor-progress-batch=200"
    )
    assert settings.sensors.http == HttpOptions(per_host_limit=3)
    assert settings.sensor_progress_period == 7.5
    assert settings.sensor_progress_batch == 200


async def test_the_per_host_flag_reaches_the_sensor_engine() -> None:
    settings = settings_for("--sensor-http-per-host=3", "--no-leader-elect")
    api = ApiClient(Configuration())
    try:
        controller = Controller(api, settings, registry=CollectorRegistry())
        assert controller.sensors.options.http.per_host_limit == 3
    finally:
        await api.close()


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--sensor-http-per-host", "0"),
        ("--sensor-http-per-host", str(HttpOptions.total_limit + 1)),
        ("--sensor-progress-period", "0"),
        ("--sensor-progress-period", "-5"),
        ("--sensor-progress-period", "nan"),
        ("--sensor-progress-period", "inf"),
        ("--sensor-progress-batch", "0"),
    ],
)
def test_an_out_of_range_sensor_flag_is_a_usage_error_naming_it(
    flag: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A missing kubeconfig makes an accepted value fail fast (exit 1) instead of starting a controller.
    unreachable = ["--no-agent-server", f"--kubeconfig={tmp_path / 'missing'}"]
    assert main(["controller", "run", *unreachable, f"{flag}={value}"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"leoflow: error: {flag} must" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("flag", ["--metrics-address", "--agent-address"])
@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("0.0.0.0:99999", "'0.0.0.0:99999': the port must be between 0 and 65535"),
        ("0.0.0.0:-1", "must be HOST:PORT, got '0.0.0.0:-1'"),
        ("9443", "must be HOST:PORT, got '9443'"),
    ],
)
def test_an_address_without_a_usable_port_is_a_usage_error_naming_the_flag(
    flag: str, value: str, fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unreachable = ["--agent-insecure", f"--kubeconfig={tmp_path / 'missing'}"]
    assert main(["controller", "run", *unreachable, f"{flag}={value}"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"leoflow: error: {flag} {fragment}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "flag", ["--sensor-http-per-host", "--sensor-progress-period", "--sensor-progress-batch"]
)
def test_a_sensor_flag_that_is_not_a_number_is_a_usage_error_naming_it(
    flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["controller", "run", f"{flag}=many"])
    assert exited.value.code == EXIT_USAGE
    assert f"argument {flag}: invalid" in capsys.readouterr().err


def test_a_pod_annotation_reaches_every_task_pod() -> None:
    settings = settings_for("--pod-annotation", "example.com/team=data")
    assert settings.reconcile.pod_annotations is not None
    assert settings.reconcile.pod_annotations({}) == {"example.com/team": "data"}


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("leoflow.io/attempt-id=x", "reserved"),
        ("team_=x", "not a Kubernetes qualified name"),
    ],
)
def test_a_pod_annotation_leoflow_owns_or_kubernetes_refuses_is_a_usage_error(
    value: str, why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The controller reads its own annotations back (the attempt id adopts pods after a restart).
    assert main(["controller", "run", "--pod-annotation", value]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"--pod-annotation {value!r}" in err and why in err

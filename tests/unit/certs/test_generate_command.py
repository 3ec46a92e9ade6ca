from __future__ import annotations

import datetime
import os
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from leoflow.certs import authority
from leoflow.cli import certs as certs_cli
from leoflow.cli import main


def test_generate_writes_ca_and_serving_certificate_with_service_names(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    code = main(["certs", "generate", "--out", str(out), "--service", "wh", "--namespace", "ns"])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(certs_cli.FILES)
    assert (out / "tls.key").stat().st_mode & 0o777 == 0o600
    serving = x509.load_pem_x509_certificate((out / "tls.crt").read_bytes())
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    assert authority.signed_by(serving, ca)
    assert authority.subject_alternative_names(serving) == (
        frozenset({"wh", "wh.ns", "wh.ns.svc", "wh.ns.svc.cluster.local"}),
        frozenset({"127.0.0.1"}),
    )
    # The pair is usable as-is by an SSL server and verifiable by a client trusting ca.crt.
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(out / "tls.crt", out / "tls.key")
    client = ssl.create_default_context(cafile=str(out / "ca.crt"))
    assert client.cert_store_stats()["x509_ca"] == 1


def test_generate_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["certs", "generate", "--out", str(tmp_path), "--service", "wh", "--namespace", "ns"]
    assert main(argv) == 0
    assert main(argv) == 1
    assert "pass --force" in capsys.readouterr().err
    assert main([*argv, "--force", "--ip", "10.1.2.3", "--ip", "::1"]) == 0
    serving = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    assert authority.subject_alternative_names(serving)[1] == frozenset({"10.1.2.3", "::1"})


def test_generate_rejects_a_bad_ip_with_usage_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "certs",
        "generate",
        "--out",
        str(tmp_path),
        "--service",
        "wh",
        "--namespace",
        "ns",
        "--ip",
        "nope",
    ]
    assert main(argv) == 2
    assert "--ip 'nope' is not an IP address" in capsys.readouterr().err


def test_keep_rejects_a_bad_ip_before_touching_the_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "keep", "--namespace", "ns", "--service", "wh", "--ip", "x"]) == 2
    assert "--ip 'x' is not an IP address" in capsys.readouterr().err


def test_keep_refuses_one_secret_for_both_endpoints(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["certs", "keep", "--namespace", "ns", "--service", "wh", "--controller-service", "ctl"]
    assert main([*argv, "--controller-secret", "leoflow-webhook-tls"]) == 2
    assert "--controller-secret must differ from --secret" in capsys.readouterr().err


def generate(out: Path | str, *flags: str) -> int:
    return main(["certs", "generate", "--out", str(out), "--service", "wh", "--namespace", "ns", *flags])


def test_generate_refuses_an_out_that_is_not_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    regular = tmp_path / "afile"
    regular.write_text("keep me")
    for out in (regular, Path("/dev/null")):
        assert generate(out) == 2
        assert f"leoflow: error: --out {out} is not a directory" in capsys.readouterr().err
    assert regular.read_text() == "keep me"


@pytest.mark.parametrize(
    ("parent", "why"), [("afile", "Not a directory"), ("/proc", "No such file or directory")]
)
def test_generate_names_an_out_directory_it_cannot_create(
    parent: str, why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "afile").touch()
    out = tmp_path / parent / "certs"
    assert generate(out) == 2
    err = capsys.readouterr().err
    assert f"leoflow: error: --out {out}: cannot create the directory: {why}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--service", "Bad Svc"], "--service 'Bad Svc' is not a valid Service name"),
        (["--service", "1wh"], "--service '1wh' is not a valid Service name"),
        (["--service", "w" * 64], "is not a valid Service name"),
        (["--namespace", "NS!"], "--namespace 'NS!' is not a valid namespace name"),
        (["--namespace", "ns-"], "--namespace 'ns-' is not a valid namespace name"),
    ],
)
def test_generate_refuses_names_kubernetes_would_refuse_and_writes_nothing(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # argparse keeps the last of a repeated flag, so these override generate()'s valid names.
    assert generate(tmp_path / "tls", *flags) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "tls").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--days", "0"], "--days must be at least 1, got 0"),
        (["--days", "100000000"], "--days 100000000 reaches past 9999-12-31"),
        (["--days", "100000000", "--ca-days", "100000001"], "--days 100000000 reaches past 9999-12-31"),
        (["--ca-days", "100000000"], "--ca-days 100000000 reaches past 9999-12-31"),
        (["--days", "400", "--ca-days", "300"], "--ca-days 300 is shorter than --days 400"),
    ],
)
def test_generate_says_which_lifetime_is_wrong_and_why(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generate(tmp_path, *flags) == 2
    assert f"leoflow: error: {message}" in capsys.readouterr().err


def test_generate_accepts_the_longest_lifetime_a_certificate_can_carry(tmp_path: Path) -> None:
    longest = (authority.LATEST_NOT_AFTER - datetime.datetime.now(datetime.UTC)).days
    assert generate(tmp_path, "--days", str(longest), "--ca-days", str(longest)) == 0
    serving = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    assert serving.not_valid_after_utc <= authority.LATEST_NOT_AFTER


def test_generate_never_lets_others_read_a_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A world-readable old key, and a umask that would create new files world-readable too.
    out = tmp_path / "tls"
    out.mkdir()
    (out / "tls.key").write_text("old")
    (out / "tls.key").chmod(0o644)
    modes_when_named: dict[str, int] = {}
    rename = os.replace

    def recording_rename(src: str, dst: str) -> None:
        # The moment the content gets its name: it must already be as private as it will end.
        modes_when_named[Path(dst).name] = os.stat(src).st_mode & 0o777
        rename(src, dst)

    monkeypatch.setattr(os, "replace", recording_rename)
    umask = os.umask(0)
    try:
        assert generate(out, "--force") == 0
    finally:
        os.umask(umask)
    assert modes_when_named == {"ca.crt": 0o644, "ca.key": 0o600, "tls.crt": 0o644, "tls.key": 0o600}
    assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()} == modes_when_named


def test_keep_refuses_bad_names_and_a_non_positive_interval_before_touching_the_cluster(
    capsys: pytest.CaptureFixture[str],
) -> None:
    keep = ["certs", "keep", "--namespace", "ns", "--service", "wh"]
    for flags, message in (
        (["--namespace", "NS!"], "--namespace 'NS!' is not a valid namespace name"),
        (["--service", "Bad Svc"], "--service 'Bad Svc' is not a valid Service name"),
        (["--controller-service", "ctl_1"], "--controller-service 'ctl_1' is not a valid Service name"),
        (["--interval", "0"], "--interval must be a positive number of seconds, got 0"),
        (["--interval", "nan"], "--interval must be a positive number of seconds, got nan"),
    ):
        assert main([*keep, *flags]) == 2
        assert message in capsys.readouterr().err

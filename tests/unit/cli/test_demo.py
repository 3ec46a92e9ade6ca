"""The demo starts the controller and webhook with flags their own parsers accept, and scopes the
webhook to its namespace so it never touches other pods in the cluster."""

from __future__ import annotations

import base64
from pathlib import Path

from leoflow.cli import build_parser, demo
from leoflow.dev.cluster import ClusterState, Ports


def state(tmp_path: Path) -> ClusterState:
    return ClusterState(tmp_path, "k8s-v1.34.4", Ports(1, 2, 3, 4, 5), kwok_nodes=0, real_node=True)


def test_controller_flags_parse_with_the_controller_command(tmp_path: Path) -> None:
    tls = demo.Tls(tmp_path)
    argv = demo.controller_argv(state(tmp_path), "leoflow-demo", "10.244.0.1:9443", 8081, tls)
    args = build_parser().parse_args(argv[3:])
    assert (args.namespace, args.agent_address, args.leader_elect) == (
        "leoflow-demo",
        "10.244.0.1:9443",
        False,
    )
    assert (args.agent_tls_cert, args.metrics_address) == (str(tls.cert), "127.0.0.1:8081")


def test_webhook_flags_parse_with_the_webhook_command(tmp_path: Path) -> None:
    args = build_parser().parse_args(demo.webhook_argv(8443, "10.244.0.1:9443", demo.Tls(tmp_path))[3:])
    assert (args.controller_addr, args.ca_configmap, args.port) == (
        "10.244.0.1:9443",
        demo.CA_CONFIGMAP,
        "8443",
    )


def test_webhook_registration_is_scoped_to_the_demo_namespace() -> None:
    config = demo.demo_webhook_configuration("https://127.0.0.1:1/mutate-pods", b"PEM", "leoflow-demo")
    hook = config["webhooks"][0]
    assert hook["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["leoflow-demo"]}
    ]
    assert hook["objectSelector"] == {"matchLabels": {"leoflow.io/inject": "true"}}
    assert base64.b64decode(hook["clientConfig"]["caBundle"]) == b"PEM"


def test_one_certificate_serves_both_the_webhook_and_the_agent_server(tmp_path: Path) -> None:
    from cryptography import x509

    tls = demo.write_tls(tmp_path / "tls", ("127.0.0.1", "10.244.7.1"))
    cert = x509.load_pem_x509_certificate(tls.cert.read_bytes())
    ips = {
        str(ip)
        for ip in cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.IPAddress)
    }
    assert ips == {"127.0.0.1", "10.244.7.1"}
    assert oct(tls.key.stat().st_mode & 0o777) == "0o600"

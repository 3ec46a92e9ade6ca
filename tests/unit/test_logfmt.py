"""Log lines are logfmt: greppable key=value pairs, values quoted only when needed."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import leoflow
from leoflow.logfmt import LogfmtFormatter


def render(msg: str, **extra: object) -> str:
    record = logging.LogRecord("leoflow.test", logging.INFO, __file__, 1, msg, None, None)
    record.__dict__.update(extra)
    return LogfmtFormatter().format(record)


def test_extra_fields_follow_the_message_as_key_value_pairs() -> None:
    line = render("pod created", pod="etl-run-1-extract-1", attempt=2)
    assert line.endswith('level=info logger=leoflow.test msg="pod created" pod=etl-run-1-extract-1 attempt=2')


def test_values_with_spaces_quotes_or_newlines_are_quoted_and_escaped() -> None:
    line = render("x", reason='said "no"\nthen left', empty="")
    assert 'reason="said \\"no\\"\\nthen left"' in line
    assert 'empty=""' in line


def test_debug_logging_never_shows_kubernetes_client_response_bodies() -> None:
    from leoflow.logfmt import configure

    configure(logging.DEBUG)
    assert not logging.getLogger("kubernetes_asyncio.client.rest").isEnabledFor(logging.DEBUG)
    assert logging.getLogger("leoflow.controller").isEnabledFor(logging.DEBUG)


def test_no_log_call_in_leoflow_passes_an_extra_field_logging_reserves() -> None:
    # logging raises KeyError for such a field, but only when the level is enabled: a watch
    # expiry's INFO line once killed the informer in production while tests at WARNING passed.
    reserved = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
    clashes = []
    for path in sorted(Path(leoflow.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.keyword) and node.arg == "extra" and isinstance(node.value, ast.Dict):
                keys = [k.value for k in node.value.keys if isinstance(k, ast.Constant)]
                clashes += [f"{path.name}:{node.value.lineno} {key}" for key in keys if key in reserved]
    assert not clashes

"""The latency a webhook adds to pod creation through the API server, beside its floors, in one run.

Seven conditions, chosen per pod by its labels through one MutatingWebhookConfiguration whose
entries all follow Leoflow's contract (``leoflow.webhook.registration``):

- ``none``: no webhook matches, the baseline;
- ``leoflow``: ``leoflow webhook serve`` (label ``leoflow.io/inject: "true"``), the real mutation;
- ``leoflow-preinjected``: a second ``leoflow webhook serve``, sent pods that arrive already
  injected (as they would if the controller rendered the injection itself): Leoflow reads each
  and answers without a patch, and the API server stores the same pod as with ``leoflow``;
- the floors (label ``bench.leoflow.io/floor``), servers that answer at once: ``aiohttp-noop`` and
  ``go-http2-noop`` allow without a patch (the cost of calling any webhook here, over HTTP/1.1 and
  over HTTP/2); ``aiohttp-annotation-patch`` returns only the patch's annotation operation (what
  the API server pays to apply any patch at all); ``aiohttp-static-patch`` returns Leoflow's whole
  patch computed beforehand (that, plus storing the bigger, mutated pod).

Pods are created open-loop at ``rate`` in blocks; every round runs one block per condition, in an
order rotated each round, so drift (other tenants' load on a shared machine, the growing pod
count) falls on every condition alike. The serial creates (one at a time, no queueing) interleave
the conditions pod by pod. By default pods name a scheduler that does not exist, so they stay
Pending and the API server serves the creates alone; ``kwok`` placement adds a bind and status
writes per pod, which on two cores leaves the control plane no headroom at 200/s.

A create's latency is the POST until the response body is read, from a lean aiohttp client (see
``pod_writer``). Beside it: the API server's own histogram of each webhook call
(``apiserver_admission_webhook_admission_duration_seconds``, buckets 5, 25, 100 ms and up, so its
share within 5 ms answers the goal directly), CPU milliseconds per create of every process, how
busy the machine was, the client's event-loop lag (is the client itself late?), each condition's
p99 per block (one disturbed block moves a pooled p99), and for Leoflow its own handling time and
TLS handshakes (connection churn).

What sets the p99 on a two-core machine is the API server's garbage collector. Each cycle marks
a heap of a few hundred MB (every pod created so far sits in its watch cache) for 0.3 to 1.4 s of
CPU, and its idle-time mark workers take every core they find: creates in flight then wait 10 to
40 ms, with a webhook or without. A cycle starts every 3 to 11 s, so a 2.5 s block either catches
one or not, and a block's p99 mostly says which (docs/webhook-performance.md, eighth session). What each
condition costs the API server is therefore also reported as the bytes it allocates per create
(``go_memstats_alloc_bytes_total`` read between blocks), which the collector's work follows and
which no collection's timing moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import ssl
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from benchlib import percentile, summary_ms
from kubernetes_asyncio import client
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.config import load_kube_config
from prometheus_client.parser import text_string_to_metric_families
from servers import Server

from leoflow.agent_inject import Denial, InjectionSettings, inject
from leoflow.agent_inject.names import INJECT_LABEL
from leoflow.dev import kwok
from leoflow.webhook import reviews
from leoflow.webhook.registration import WEBHOOK_NAME, only_namespaces, webhook_configuration

NONE = "none"
LEOFLOW = "leoflow"
PREINJECTED = "leoflow-preinjected"
FLOOR_LABEL = "bench.leoflow.io/floor"
CLUSTER_PROCESSES = ("kube-apiserver", "etcd", "kube-scheduler", "kube-controller-manager", "kwok")
APISERVER_WEBHOOK_HISTOGRAM = "apiserver_admission_webhook_admission_duration_seconds"
LEOFLOW_REVIEW_HISTOGRAM = "leoflow_webhook_review_duration_seconds"
KIB = 1024
ALLOCATED = re.compile(rb"^go_memstats_alloc_bytes_total (\S+)$", re.MULTILINE)
GOAL_ADDED_P99_MS = 5.0
BASELINE_SLACK_MS = 1.0


def webhook_name(condition: str) -> str:
    return WEBHOOK_NAME if condition == LEOFLOW else f"{condition}.floor.bench.leoflow.io"


# A scheduler that does not exist: the pod stays Pending and no component writes to it again.
UNSCHEDULED = {"schedulerName": "leoflow-bench-nobody"}
PLACEMENTS = {"unscheduled": UNSCHEDULED, "kwok": kwok.simulated_pod_placement()}


def condition_pod(condition: str, name: str, placement: str) -> dict[str, Any]:
    # A task pod as the controller creates it: with its identity labels, so Leoflow has no warning
    # to add (a warning is work for the API server that a floor would not cause).
    labels = {
        "leoflow.io/dag": "bench",
        "leoflow.io/run": "bench-1",
        "leoflow.io/task": "create",
        "leoflow.io/attempt": "1",
    }
    if condition in (LEOFLOW, PREINJECTED):
        labels[INJECT_LABEL] = "true"
    if condition not in (NONE, LEOFLOW):
        labels[FLOOR_LABEL] = condition
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            **PLACEMENTS[placement],
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "leoflow.dev/base:1", "command": ["true"]}],
        },
    }


async def pod_writer(settings: Configuration) -> tuple[aiohttp.ClientSession, dict[str, str]]:
    """A lean client for the measured POSTs, with the kubeconfig's credentials.

    kubernetes_asyncio spends about 1 ms of CPU per create building the request and, unless told
    not to, 0.3 to 0.8 ms decoding the pod it gets back; at 200/s on two cores that is a fifth of
    a core taken from the API server the benchmark measures. A plain aiohttp POST of ready bytes
    costs a fraction of it.
    """
    context = ssl.create_default_context(cafile=settings.ssl_ca_cert)
    if settings.cert_file:
        context.load_cert_chain(settings.cert_file, settings.key_file)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    token = await settings.get_api_key_with_prefix("BearerToken")
    if token:
        headers["Authorization"] = token
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=0)), headers


def leoflow_patch(settings: InjectionSettings, placement: str, *, annotation_only: bool = False) -> str:
    """The base64 JSON Patch Leoflow answers for the benchmark's pod, as the response carries it;
    with ``annotation_only``, just its operation on the annotations (one op: the agent version)."""
    mutation = inject(condition_pod(LEOFLOW, "any", placement), settings)
    if isinstance(mutation, Denial):
        raise SystemExit(f"the benchmark's pod is denied by the mutation: {mutation.message}")
    patch = mutation.patch
    if annotation_only:
        patch = [op for op in patch if op["path"].startswith("/metadata/annotations")]
    return reviews.allowed("any", patch=patch)["response"]["patch"]


def configuration(name: str, namespace: str, servers: Sequence[Server], ca: bytes) -> dict[str, Any]:
    """One MutatingWebhookConfiguration, an entry per server, each selecting its condition's pods."""
    entries = []
    for server in servers:
        entry = webhook_configuration(
            name, url=server.url, ca_bundle=ca, namespace_selector=only_namespaces([namespace])
        )["webhooks"][0]
        if server.name == LEOFLOW:
            # Leoflow's own entry leaves the pre-injected pods (which carry its label) to theirs.
            selector = {**entry["objectSelector"]}
            selector["matchExpressions"] = [{"key": FLOOR_LABEL, "operator": "DoesNotExist"}]
            entry = {**entry, "objectSelector": selector}
        else:
            entry = {
                **entry,
                "name": webhook_name(server.name),
                "objectSelector": {"matchLabels": {FLOOR_LABEL: server.name}},
            }
        entries.append(entry)
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": entries,
    }


class CpuClock:
    """CPU seconds of named processes and busy seconds of the whole machine, from /proc."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.tick = os.sysconf("SC_CLK_TCK")

    def read(self) -> dict[str, float]:
        seconds = {name: self._process(pid) for name, pid in self.pids.items()}
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        seconds["machine_busy"] = (sum(fields) - fields[3] - fields[4]) / self.tick
        return seconds

    def _process(self, pid: int) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / self.tick


@dataclass
class Tally:
    """What the at-rate blocks of one condition measured, summed over rounds."""

    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    lag: list[float] = field(default_factory=list)
    failures: int = 0
    block_p99_ms: list[float] = field(default_factory=list)
    # Bytes the API server allocated per create, block by block.
    apiserver_allocated: list[float] = field(default_factory=list)

    def add_cpu(self, before: dict[str, float], after: dict[str, float]) -> None:
        for name, value in after.items():
            self.cpu[name] = self.cpu.get(name, 0.0) + value - before[name]


class LagProbe:
    """How late this process's event loop wakes from a 5 ms sleep: the client's own lateness."""

    INTERVAL = 0.005

    def __init__(self) -> None:
        self.samples: list[float] = []

    async def run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(self.INTERVAL)
            self.samples.append(time.perf_counter() - started - self.INTERVAL)


Create = Callable[[str, int], Awaitable[float]]


async def at_rate(
    create: Create, condition: str, first: int, count: int, rate: float
) -> tuple[list[float], int]:
    """Starts ``count`` creations ``rate`` per second (open loop); returns latencies and failures."""
    began = time.perf_counter()
    pending = []
    for i in range(count):
        await asyncio.sleep(max(0.0, began + i / rate - time.perf_counter()))
        pending.append(asyncio.create_task(create(condition, first + i)))
    outcomes = await asyncio.gather(*pending, return_exceptions=True)
    latencies = [o for o in outcomes if isinstance(o, float)]
    return latencies, len(outcomes) - len(latencies)


def histograms(text: str, family: str, by: str | None) -> dict[str, dict[float, float]]:
    """Cumulative bucket counts of a histogram family, summed per value of label ``by``."""
    out: dict[str, dict[float, float]] = {}
    for metric in text_string_to_metric_families(text):
        if metric.name != family:
            continue
        for sample in metric.samples:
            if not sample.name.endswith("_bucket") or sample.labels.get("type", "admit") != "admit":
                continue
            key = sample.labels.get(by, "") if by else ""
            bound = float(sample.labels["le"])
            buckets = out.setdefault(key, {})
            buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return out


def counter(text: str, name: str) -> float:
    for metric in text_string_to_metric_families(text):
        for sample in metric.samples:
            if sample.name == name:
                return float(sample.value)
    return 0.0


def describe_histogram(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """Shares within each bound and Prometheus-style interpolated quantiles of the delta."""
    delta = {bound: after[bound] - before.get(bound, 0.0) for bound in sorted(after)}
    total = delta.get(float("inf"), 0.0)
    if total <= 0:
        return {"calls": 0}

    def quantile(q: float) -> float:
        lower, below = 0.0, 0.0
        for bound, cumulative in delta.items():
            if cumulative >= q * total:
                if bound == float("inf"):
                    return lower * 1000
                share = (q * total - below) / (cumulative - below) if cumulative > below else 1.0
                return (lower + (bound - lower) * share) * 1000
            lower, below = bound, cumulative
        return lower * 1000

    return {
        "calls": int(total),
        "share_within_ms": {
            f"{bound * 1000:g}": round(count / total, 4)
            for bound, count in delta.items()
            if bound != float("inf")
        },
        "p50_ms_interpolated": round(quantile(0.5), 3),
        "p99_ms_interpolated": round(quantile(0.99), 3),
    }


async def apiserver_metrics(api: client.ApiClient) -> bytes:
    response = await api.call_api("/metrics", "GET", auth_settings=["BearerToken"], _preload_content=False)
    text: bytes = await response.read()
    response.release()
    return text


async def apiserver_allocated_bytes(api: client.ApiClient) -> float:
    """Bytes the API server has allocated since it started. The collector's work grows with them,
    so unlike the CPU of a block (which a collection lands in or not) they say what each create
    costs it. Its /metrics is about 3 MB: a regular expression spares the client parsing it."""
    found = ALLOCATED.search(await apiserver_metrics(api))
    if found is None:
        raise RuntimeError("the API server's /metrics has no go_memstats_alloc_bytes_total")
    return float(found[1])


@dataclass
class Scrapes:
    apiserver: str
    leoflow: str


async def scrape(api: client.ApiClient, session: aiohttp.ClientSession, leoflow: Server) -> Scrapes:
    apiserver = (await apiserver_metrics(api)).decode()
    async with session.get(f"https://127.0.0.1:{leoflow.port}/metrics") as own:
        return Scrapes(apiserver, await own.text())


async def measure(
    kubeconfig: Path,
    servers: Sequence[Server],
    ca: Path,
    cluster_pids: dict[str, int],
    *,
    pods: int,
    rate: float,
    block_seconds: float,
    serial: int,
    placement: str,
    injection: InjectionSettings,
) -> dict[str, Any]:
    conditions = [NONE, *(s.name for s in servers)]
    leoflow = next(s for s in servers if s.name == LEOFLOW)
    settings = Configuration()
    await load_kube_config(config_file=str(kubeconfig), client_configuration=settings)
    api = client.ApiClient(settings)
    # Unbounded (limit=0): never let the client queue a create; a slow second has hundreds in flight.
    writer, headers = await pod_writer(settings)
    core = client.CoreV1Api(api)
    admission = client.AdmissionregistrationV1Api(api)
    namespace = f"bench-webhook-{uuid.uuid4().hex[:6]}"
    registration = f"leoflow-bench-{uuid.uuid4().hex[:6]}"
    trust = ssl.create_default_context(cafile=str(ca))
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust))

    pods_url = f"{settings.host}/api/v1/namespaces/{namespace}/pods"

    injected = inject(condition_pod(PREINJECTED, "template", placement), injection)
    if isinstance(injected, Denial):
        raise SystemExit(f"the benchmark's pod is denied by the mutation: {injected.message}")

    def pod_for(condition: str, name: str, *, probe: bool) -> dict[str, Any]:
        if condition != PREINJECTED or probe:
            return condition_pod(condition, name, placement)
        return {**injected.pod, "metadata": {**injected.pod["metadata"], "name": name}}

    async def create(
        condition: str, i: int, *, dry_run: bool = False, probe: bool = False
    ) -> tuple[float, bytes, list[str]]:
        data = json.dumps(pod_for(condition, f"{condition}-{i}", probe=probe)).encode()
        url = f"{pods_url}?dryRun=All" if dry_run else pods_url
        started = time.perf_counter()
        async with writer.post(url, data=data, headers=headers) as response:
            body = await response.read()
        elapsed = time.perf_counter() - started
        if response.status != 201:
            raise RuntimeError(f"creating a {condition} pod: HTTP {response.status}: {body[:300]!r}")
        return elapsed, body, response.headers.getall("Warning", [])

    async def timed(condition: str, i: int) -> float:
        return (await create(condition, i))[0]

    async def registered(condition: str) -> bool:
        # A pre-injected pod comes back as it went: probe that entry with a pod still to inject.
        _, body, warnings = await create(condition, 0, dry_run=True, probe=True)
        if condition in (LEOFLOW, PREINJECTED):
            return b'"leoflow-agent-init"' in body
        # A floor leaves no trace in the pod; it warns on dry runs only.
        return any("bench floor" in w for w in warnings)

    await core.create_namespace({"metadata": {"name": namespace}})
    try:
        while not (await core.list_namespaced_service_account(namespace)).items:
            await asyncio.sleep(0.1)
        await admission.create_mutating_webhook_configuration(
            configuration(registration, namespace, servers, await asyncio.to_thread(ca.read_bytes))
        )
        # The API server loads a new configuration asynchronously: wait until dry runs show each entry.
        for condition in conditions[1:]:
            while not await registered(condition):
                await asyncio.sleep(0.1)

        # Each condition's pod as the API server returns it (JSON, managedFields included; etcd
        # holds protobuf): the bytes a mutation adds are what the API server applies and stores.
        pod_bytes = {c: len((await create(c, 0, dry_run=True))[1]) for c in conditions}

        clock = CpuClock({**cluster_pids, **{s.name: s.pid for s in servers}, "client": os.getpid()})
        idle_before = clock.read()
        await asyncio.sleep(3)
        idle_after = clock.read()
        background = (idle_after["machine_busy"] - idle_before["machine_busy"]) / 3

        serial_latencies: dict[str, list[float]] = {c: [] for c in conditions}
        for i in range(serial):
            for condition in conditions[i % len(conditions) :] + conditions[: i % len(conditions)]:
                serial_latencies[condition].append(await timed(condition, 1_000_000 + i))

        probe = LagProbe()
        lag_task = asyncio.create_task(probe.run())
        tallies = {c: Tally() for c in conditions}
        per_block = max(1, round(rate * block_seconds))
        rounds = max(1, -(-pods // per_block))
        before = await scrape(api, session, leoflow)
        # What one read of the counter allocates itself, taken off every block's figure.
        allocated = await apiserver_allocated_bytes(api)
        allocated, first = await apiserver_allocated_bytes(api), allocated
        reading = allocated - first
        for r in range(rounds):
            for condition in conditions[r % len(conditions) :] + conditions[: r % len(conditions)]:
                tally = tallies[condition]
                lag_mark, cpu_before, started = len(probe.samples), clock.read(), time.perf_counter()
                latencies, failures = await at_rate(timed, condition, r * per_block, per_block, rate)
                tally.seconds += time.perf_counter() - started
                tally.add_cpu(cpu_before, clock.read())
                tally.latencies += latencies
                tally.block_p99_ms.append(summary_ms(latencies)["p99_ms"])
                tally.failures += failures
                tally.lag += probe.samples[lag_mark:]
                allocated, before_block = await apiserver_allocated_bytes(api), allocated
                tally.apiserver_allocated.append((allocated - before_block - reading) / per_block)
        after = await scrape(api, session, leoflow)
        lag_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await lag_task
    finally:
        with contextlib.suppress(client.ApiException):
            await admission.delete_mutating_webhook_configuration(registration)
        await core.delete_namespace(namespace)
        await gone(core, namespace)
        await session.close()
        await writer.close()
        await api.close()
    return report(
        conditions,
        tallies,
        serial_latencies,
        before,
        after,
        rate=rate,
        placement=placement,
        per_block=per_block,
        rounds=rounds,
        background_busy_cores=background,
        pod_bytes=pod_bytes,
    )


CLEANUP_SECONDS = 600.0


async def gone(core: client.CoreV1Api, namespace: str) -> None:
    """Waits until the namespace and its pods are deleted, so the next benchmark on a shared
    cluster is not measured against this one's cleanup (thousands of KWOK pods take minutes)."""
    try:
        async with asyncio.timeout(CLEANUP_SECONDS):
            while True:
                try:
                    await core.read_namespace(namespace)
                except client.ApiException as err:
                    if err.status == 404:
                        return
                    raise
                await asyncio.sleep(1)
    except TimeoutError:
        print(f"namespace {namespace} still terminating after {CLEANUP_SECONDS:.0f}s", file=sys.stderr)


def report(
    conditions: list[str],
    tallies: dict[str, Tally],
    serial_latencies: dict[str, list[float]],
    before: Scrapes,
    after: Scrapes,
    *,
    rate: float,
    placement: str,
    per_block: int,
    rounds: int,
    background_busy_cores: float,
    pod_bytes: dict[str, int],
) -> dict[str, Any]:
    api_before = histograms(before.apiserver, APISERVER_WEBHOOK_HISTOGRAM, "name")
    api_after = histograms(after.apiserver, APISERVER_WEBHOOK_HISTOGRAM, "name")
    base = summary_ms(tallies[NONE].latencies)
    serial_base = summary_ms(serial_latencies[NONE])
    at_rate_report: dict[str, Any] = {}
    for condition in conditions:
        tally = tallies[condition]
        created = len(tally.latencies)
        latency = summary_ms(tally.latencies)
        entry: dict[str, Any] = {
            "latency": {**latency, "p90_ms": round(percentile([x * 1000 for x in tally.latencies], 90), 3)},
            # One disturbed block (another tenant's burst) moves the pooled p99; this shows which.
            "p99_ms_by_block": tally.block_p99_ms,
            "achieved_per_s": round((created + tally.failures) / tally.seconds, 1),
            "failures": tally.failures,
            "machine_busy_cores": round(tally.cpu.pop("machine_busy") / tally.seconds, 3),
            "cpu_ms_per_create": {
                name: round(seconds / max(created, 1) * 1000, 3)
                for name, seconds in sorted(tally.cpu.items())
            },
            "client_loop_lag": summary_ms(tally.lag),
            # The median of the blocks: a block the API server did something else in (a relist, say)
            # cannot move it.
            "apiserver_kb_allocated_per_create": round(statistics.median(tally.apiserver_allocated) / KIB, 1),
            "apiserver_kb_allocated_per_create_by_block": [
                round(per_create / KIB, 1) for per_create in tally.apiserver_allocated
            ],
        }
        if condition != NONE:
            entry["added_p50_ms"] = round(latency["p50_ms"] - base["p50_ms"], 3)
            entry["added_p99_ms"] = round(latency["p99_ms"] - base["p99_ms"], 3)
            entry["added_p99_ms_median_of_rounds"] = round(
                statistics.median(
                    p99 - base_p99
                    for p99, base_p99 in zip(tally.block_p99_ms, tallies[NONE].block_p99_ms, strict=True)
                ),
                3,
            )
            entry["p99_ratio"] = round(latency["p99_ms"] / base["p99_ms"], 2)
            name = webhook_name(condition)
            entry["apiserver_webhook_call"] = describe_histogram(
                api_before.get(name, {}), api_after.get(name, {float("inf"): 0.0})
            )
        at_rate_report[condition] = entry

    one_by_one: dict[str, Any] = {}
    for condition in conditions:
        summary = summary_ms(serial_latencies[condition])
        if condition != NONE:
            summary["added_p50_ms"] = round(summary["p50_ms"] - serial_base["p50_ms"], 3)
            summary["added_p99_ms"] = round(summary["p99_ms"] - serial_base["p99_ms"], 3)
        one_by_one[condition] = summary

    own_before = histograms(before.leoflow, LEOFLOW_REVIEW_HISTOGRAM, None).get("", {})
    own_after = histograms(after.leoflow, LEOFLOW_REVIEW_HISTOGRAM, None).get("", {float("inf"): 0.0})
    handshakes = counter(after.leoflow, "leoflow_webhook_tls_handshakes_total") - counter(
        before.leoflow, "leoflow_webhook_tls_handshakes_total"
    )
    leoflow = at_rate_report[LEOFLOW]
    floor_conditions = [c for c in conditions if c not in (NONE, LEOFLOW, PREINJECTED)]
    floors = [at_rate_report[c]["latency"]["p99_ms"] for c in floor_conditions]
    # When the API server cannot absorb the rate even without a webhook, latencies are queueing time
    # and their difference says nothing about the webhook: the goal is then not judged.
    kept_up = (
        min(at_rate_report[c]["achieved_per_s"] for c in conditions) >= 0.95 * rate and base["p50_ms"] < 100
    )
    # No webhook makes a create faster. A floor whose blocks beat the baseline's by more than a
    # millisecond (median of rounds) means the baseline's own blocks were disturbed, and every
    # difference against them is then too small: the goal is not judged on such a run.
    too_fast = {
        c: at_rate_report[c]["added_p99_ms_median_of_rounds"]
        for c in floor_conditions
        if at_rate_report[c]["added_p99_ms_median_of_rounds"] < -BASELINE_SLACK_MS
    }
    return {
        "rate_per_s": rate,
        "placement": placement,
        "pods_per_block": per_block,
        "rounds": rounds,
        "background_busy_cores_before": round(background_busy_cores, 3),
        "pod_json_bytes": pod_bytes,
        "one_by_one": one_by_one,
        "at_rate": at_rate_report,
        "leoflow_server": {
            "review_handling": describe_histogram(own_before, own_after),
            "tls_handshakes": int(handshakes),
        },
        "leoflow_added_p99_over_best_floor_ms": (
            round(leoflow["latency"]["p99_ms"] - min(floors), 3) if floors else None
        ),
        "goal_added_p99_ms": GOAL_ADDED_P99_MS,
        "api_server_kept_up": kept_up,
        "floors_faster_than_baseline": too_fast,
        # Both the pooled figure and the median of the rounds must pass: one disturbed baseline
        # block inflates the pooled baseline p99 and can turn the pooled difference negative.
        "meets_goal": (
            max(leoflow["added_p99_ms"], leoflow["added_p99_ms_median_of_rounds"]) <= GOAL_ADDED_P99_MS
            if kept_up and not too_fast
            else None
        ),
    }

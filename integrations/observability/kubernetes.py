"""Kubernetes source: the state of one service's workload through kubernetes_asyncio (the
executor's client), printed the way `kubectl describe` prints it so people and the rules read
it alike: pod phase, container states with reasons and exit codes, restarts, limits, the
workload's events, previous-container logs, Job status and rollout history."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
from kubernetes_asyncio.client import ApiClient, ApiException, AppsV1Api, BatchV1Api, CoreV1Api

from integrations.errors import PermanentError, RateLimited, TransientError
from integrations.kubernetes_api import api_message, configuration

REVISION = "deployment.kubernetes.io/revision"
_EVENTS_PER_OBJECT = 12


def _age(at: datetime | None, now: datetime) -> str:
    """kubectl's short age: 45s, 12m, 3h, 2d."""
    if at is None:
        return "<unknown>"
    seconds = max(0, int((now - at).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _quantities(title: str, values: dict[str, str] | None) -> list[str]:
    if not values:
        return []
    return [f"    {title}:", *(f"      {k}:  {v}" for k, v in sorted(values.items()))]


def _state(label: str, state: Any) -> list[str]:
    """`State:` or `Last State:` with the reason, message, exit code and times of that state."""
    if state is None:
        return []
    for phase in ("waiting", "running", "terminated"):
        detail = getattr(state, phase, None)
        if detail is None:
            continue
        lines = [f"    {label + ':':<16}{phase.capitalize()}"]
        if getattr(detail, "reason", None):
            lines.append(f"      Reason:       {detail.reason}")
        if getattr(detail, "message", None):
            lines.append(f"      Message:      {' '.join(str(detail.message).split())}")
        if phase == "terminated":
            lines.append(f"      Exit Code:    {detail.exit_code}")
            if detail.signal:
                lines.append(f"      Signal:       {detail.signal}")
        for name in ("started_at", "finished_at"):
            if (at := getattr(detail, name, None)) is not None:
                title = "Started" if name == "started_at" else "Finished"
                lines.append(f"      {title + ':':<14}{at.isoformat()}")
        return lines
    return []


def _container(spec: Any, status: Any) -> list[str]:
    lines = [f"  {spec.name}:", f"    Image:          {spec.image}"]
    for title, parts in (("Command", spec.command), ("Args", spec.args)):
        if parts:
            lines += [f"    {title}:", *(f"      {part}" for part in parts)]
    if status is not None:
        lines += _state("State", status.state)
        if status.last_state is not None and any(
            getattr(status.last_state, p, None) for p in ("waiting", "running", "terminated")
        ):
            lines += _state("Last State", status.last_state)
        lines += [
            f"    Ready:          {status.ready}",
            f"    Restart Count:  {status.restart_count}",
        ]
    resources = spec.resources
    lines += _quantities("Limits", resources.limits if resources else None)
    lines += _quantities("Requests", resources.requests if resources else None)
    return lines


def describe_pod(pod: Any) -> list[str]:
    """A pod as `kubectl describe pod` prints its status part."""
    meta, spec, status = pod.metadata, pod.spec, pod.status
    lines = [
        f"Name:             {meta.name}",
        f"Namespace:        {meta.namespace}",
        f"Status:           {status.phase}",
    ]
    if status.reason:
        lines.append(f"Reason:           {status.reason}")
    if status.message:
        lines.append(f"Message:          {status.message}")
    owner = next(iter(meta.owner_references or []), None)
    if owner is not None:
        lines.append(f"Controlled By:  {owner.kind}/{owner.name}")
    for title, specs, statuses in (
        ("Init Containers", spec.init_containers, status.init_container_statuses),
        ("Containers", spec.containers, status.container_statuses),
    ):
        if not specs:
            continue
        by_name = {s.name: s for s in statuses or []}
        lines.append(f"{title}:")
        for c in specs:
            lines += _container(c, by_name.get(c.name))
    return lines


def describe_events(events: Iterable[Any], now: datetime) -> list[str]:
    """Events as the `Events:` table of `kubectl describe`, oldest first."""
    ordered = sorted(
        events, key=lambda e: e.last_timestamp or e.event_time or datetime.min.replace(tzinfo=UTC)
    )
    if not ordered:
        return []
    lines = ["Events:", "  Type     Reason     Age     From     Message"]
    for e in ordered[-_EVENTS_PER_OBJECT:]:
        last = e.last_timestamp or e.event_time
        age = _age(last, now)
        if (e.count or 1) > 1:
            age += f" (x{e.count} over {_age(e.first_timestamp, now)})"
        source = (e.source.component if e.source else None) or e.reporting_component or "-"
        message = " ".join(str(e.message or "").split())
        lines.append(f"  {e.type or 'Normal'}  {e.reason}  {age}  {source}  {message}")
    return lines


class KubernetesSource:
    """One service's workload: a Deployment, a Job, or the pods a label selector picks.

    `api_url` None means the in-cluster service account, as for the Kubernetes executor.
    """

    def __init__(
        self,
        namespace: str = "default",
        *,
        deployment: str | None = None,
        job: str | None = None,
        selector: str | None = None,
        api_url: str | None = None,
        token: str = "",
        verify_ssl: bool = True,
        timeout_s: float = 10.0,
        log_lines: int = 50,
        max_pods: int = 3,
    ) -> None:
        self._namespace = namespace
        self._deployment = deployment
        self._job = job
        self._selector = selector
        self._api_url = api_url
        self._token = token
        self._verify_ssl = verify_ssl
        self._timeout_s = timeout_s
        self._log_lines = log_lines
        self._max_pods = max_pods

    async def state(self) -> list[str]:
        """The workload's state, rollout or Job status, its pods and their events and logs."""
        async with ApiClient(configuration(self._api_url, self._token, self._verify_ssl)) as api:
            try:
                return await self._state(CoreV1Api(api), AppsV1Api(api), BatchV1Api(api))
            except ApiException as exc:
                raise _translated(exc) from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise TransientError(f"Kubernetes API unreachable: {exc!r}") from exc

    async def _state(self, core: CoreV1Api, apps: AppsV1Api, batch: BatchV1Api) -> list[str]:
        now = datetime.now(UTC)
        lines: list[str] = []
        selector = self._selector
        owner: str | None = None
        if self._deployment:
            owner = self._deployment
            head, selector = await self._rollout(apps, self._deployment)
            lines += head
        elif self._job:
            owner = self._job
            lines += await self._job_status(batch, self._job)
            selector = selector or f"job-name={self._job}"
        if owner is not None:
            lines += describe_events(await self._events(core, owner), now)
        pods = await core.list_namespaced_pod(
            self._namespace, label_selector=selector or "", _request_timeout=self._timeout_s
        )
        for pod in _worst_first(pods.items)[: self._max_pods]:
            lines += describe_pod(pod)
            lines += describe_events(await self._events(core, pod.metadata.name), now)
            lines += await self._previous_logs(core, pod)
        return lines

    async def _rollout(self, apps: AppsV1Api, name: str) -> tuple[list[str], str]:
        """`kubectl describe deployment`'s head and rollout history, and the pods' selector."""
        deployment = await apps.read_namespaced_deployment(
            name, self._namespace, _request_timeout=self._timeout_s
        )
        labels = deployment.spec.selector.match_labels or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        replica_sets = await apps.list_namespaced_replica_set(
            self._namespace, label_selector=selector, _request_timeout=self._timeout_s
        )
        owned = [
            rs
            for rs in replica_sets.items
            if any(o.name == name for o in rs.metadata.owner_references or [])
        ]
        current = (deployment.metadata.annotations or {}).get(REVISION, "?")

        def revision(rs: Any) -> int:
            value = (rs.metadata.annotations or {}).get(REVISION, "0")
            return int(value) if value.isdigit() else 0

        old = sorted(
            (rs for rs in owned if str(revision(rs)) != current), key=revision, reverse=True
        )
        new = [rs for rs in owned if str(revision(rs)) == current]
        status = deployment.status
        template = deployment.spec.template.spec.containers
        return [
            f"Name:                   {name}",
            f"Namespace:              {self._namespace}",
            f"Annotations:            {REVISION}: {current}",
            f"Replicas:               {deployment.spec.replicas} desired | "
            f"{status.updated_replicas or 0} updated | {status.replicas or 0} total | "
            f"{status.available_replicas or 0} available | "
            f"{status.unavailable_replicas or 0} unavailable",
            *(f"    Image:      {c.image}" for c in template),
            "OldReplicaSets:  "
            + (
                ", ".join(f"{rs.metadata.name} (revision {revision(rs)})" for rs in old) or "<none>"
            ),
            "NewReplicaSet:   "
            + (", ".join(f"{rs.metadata.name} (revision {current})" for rs in new) or "<none>"),
        ], selector

    async def _job_status(self, batch: BatchV1Api, name: str) -> list[str]:
        job = await batch.read_namespaced_job(
            name, self._namespace, _request_timeout=self._timeout_s
        )
        status = job.status
        lines = [
            f"Name:             {name}",
            f"Namespace:        {self._namespace}",
            f"Backoff Limit:    {job.spec.backoff_limit}",
            f"Pods Statuses:    {status.active or 0} Active ({status.ready or 0} Ready) / "
            f"{status.succeeded or 0} Succeeded / {status.failed or 0} Failed",
        ]
        for condition in status.conditions or []:
            if condition.status == "True":
                lines.append(
                    f"Condition:        {condition.type}: {condition.reason or ''} "
                    f"{condition.message or ''}".rstrip()
                )
        return lines

    async def _events(self, core: CoreV1Api, name: str) -> Sequence[Any]:
        events = await core.list_namespaced_event(
            self._namespace,
            field_selector=f"involvedObject.name={name}",
            _request_timeout=self._timeout_s,
        )
        return list(events.items)

    async def _previous_logs(self, core: CoreV1Api, pod: Any) -> list[str]:
        """The last lines of each restarted container's previous run (`kubectl logs -p`)."""
        restarted = [
            s.name
            for s in (pod.status.init_container_statuses or [])
            + (pod.status.container_statuses or [])
            if s.restart_count
        ]
        logs = await asyncio.gather(
            *(self._previous_log(core, pod.metadata.name, c) for c in restarted)
        )
        lines: list[str] = []
        for container, text in zip(restarted, logs, strict=True):
            if text:
                lines.append(f"Previous logs of {pod.metadata.name}/{container}:")
                lines += text.splitlines()[-self._log_lines :]
        return lines

    async def _previous_log(self, core: CoreV1Api, pod: str, container: str) -> str:
        try:
            text = await core.read_namespaced_pod_log(
                pod,
                self._namespace,
                container=container,
                previous=True,
                tail_lines=self._log_lines,
                _request_timeout=self._timeout_s,
            )
        except ApiException as exc:
            if exc.status in (400, 404):  # no previous container (any more)
                return ""
            raise
        return str(text)


def _worst_first(pods: Sequence[Any]) -> list[Any]:
    """Pods that are not ready, then by restarts: the ones an investigation should read."""

    def badness(pod: Any) -> tuple[int, int]:
        statuses = (pod.status.init_container_statuses or []) + (
            pod.status.container_statuses or []
        )
        ready = bool(statuses) and all(s.ready for s in pod.status.container_statuses or [])
        return (0 if ready else 1, sum(s.restart_count or 0 for s in statuses))

    return sorted(pods, key=badness, reverse=True)


def _translated(exc: ApiException) -> Exception:
    message = f"Kubernetes API: {api_message(exc)}"
    if exc.status == 429:
        return RateLimited(message, 1.0)
    if exc.status is None or exc.status >= 500:
        return TransientError(message)
    return PermanentError(message)

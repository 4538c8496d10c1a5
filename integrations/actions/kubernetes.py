"""Kubernetes executor: `kubectl rollout restart` and `kubectl scale` of one Deployment, done the
way kubectl does them, through kubernetes_asyncio."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import aiohttp
from kubernetes_asyncio.client import ApiClient, ApiException, AppsV1Api, Configuration

from integrations.actions.base import (
    ActionParams,
    ActionResult,
    finish,
    one_line,
    retry_after_s,
    scale_target,
    unsupported,
)
from integrations.errors import RateLimited, TransientError
from integrations.kubernetes_api import api_message, configuration

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
_MERGE_PATCH = "application/merge-patch+json"


class KubernetesExecutor:
    """Restarts or scales one Deployment; rollback has no API verb (kubectl computes it).

    `api_url` None means the in-cluster service account; `replicas` is the configured scale target
    used when the operator names none.
    """

    def __init__(
        self,
        deployment: str,
        namespace: str = "default",
        api_url: str | None = None,
        token: str = "",
        verify_ssl: bool = True,
        replicas: int | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self._name = deployment
        self._namespace = namespace
        self._api_url = api_url
        self._token = token
        self._verify_ssl = verify_ssl
        self._replicas = replicas
        self._timeout_s = timeout_s

    def _configuration(self) -> Configuration:
        return configuration(self._api_url, self._token, self._verify_ssl)

    @property
    def _where(self) -> str:
        return f"deployment {self._namespace}/{self._name}"

    async def _restart(self, apps: AppsV1Api) -> tuple[bool, str]:
        deployment = await apps.read_namespaced_deployment(
            self._name, self._namespace, _request_timeout=self._timeout_s
        )
        if deployment.spec.paused:
            return False, f"{self._where} is paused: resume it (kubectl rollout resume) first"
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: now}}}}}
        await apps.patch_namespaced_deployment(
            self._name, self._namespace, patch, _request_timeout=self._timeout_s
        )
        return True, f"rollout restart of {self._where} started (restartedAt {now})"

    async def _scale(self, apps: AppsV1Api, params: ActionParams) -> tuple[bool, str]:
        scale = await apps.read_namespaced_deployment_scale(
            self._name, self._namespace, _request_timeout=self._timeout_s
        )
        current = scale.spec.replicas or 0
        target = scale_target(params, current, self._replicas)
        if target < 0:
            return False, f"cannot scale {self._where} to {target} replicas"
        if target == current:
            return True, f"{self._where} already has {current} replicas"
        await apps.patch_namespaced_deployment_scale(
            self._name,
            self._namespace,
            {"spec": {"replicas": target}},
            _content_type=_MERGE_PATCH,  # type: ignore[call-arg]  # accepted at run time; what `kubectl scale` sends
            _request_timeout=self._timeout_s,
        )
        return True, f"scaled {self._where} from {current} to {target} replicas"

    async def _perform(self, apps: AppsV1Api, params: ActionParams) -> tuple[bool, str]:
        if params.action == "restart":
            return await self._restart(apps)
        return await self._scale(apps, params)

    async def run(self, params: ActionParams) -> ActionResult:
        started = time.monotonic()
        if params.action not in ("restart", "scale_up"):
            return unsupported(
                params,
                started,
                "kubernetes",
                "use an http/shell rollback action (kubectl rollout undo)",
            )
        async with ApiClient(self._configuration()) as api:
            try:
                ok, outcome = await self._perform(AppsV1Api(api), params)
            except ApiException as exc:
                if exc.status == 429:
                    headers: dict[str, str] = dict(exc.headers or {})
                    wait_s = retry_after_s(headers.get("Retry-After"))
                    raise RateLimited(api_message(exc), wait_s) from exc
                if exc.status >= 500:
                    raise TransientError(f"Kubernetes API: {api_message(exc)}") from exc
                return finish(
                    params, started, ok=False, outcome=f"failed: {one_line(api_message(exc))}"
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise TransientError(f"Kubernetes API unreachable: {exc!r}") from exc
        return finish(params, started, ok=ok, outcome=outcome)

"""ECS executor: restarts (new deployment, or stopping the service's tasks) and scales one ECS
service with boto3, run in a worker thread."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)

from integrations.actions.base import (
    ActionParams,
    ActionResult,
    finish,
    one_line,
    scale_target,
    unsupported,
)
from integrations.errors import PermanentError, RateLimited, TransientError

EcsOperation = Literal["force_new_deployment", "stop_task", "update_desired_count"]

MAX_ATTEMPTS = 3
THROTTLE_RETRY_AFTER_S = 5.0
_THROTTLED = {"ThrottlingException", "Throttling", "TooManyRequestsException"}
_OUR_MISTAKE = (NoCredentialsError, PartialCredentialsError, NoRegionError, ParamValidationError)


def _client_failure(exc: ClientError) -> str:
    """The failure ECS reported, or raise when it is one that retrying can fix."""
    error = exc.response.get("Error", {})
    code, message = error.get("Code", "Error"), error.get("Message", "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
    if code in _THROTTLED or status == 429:
        raise RateLimited(f"ECS throttled us: {message}", THROTTLE_RETRY_AFTER_S) from exc
    if status >= 500:
        raise TransientError(f"ECS {code}: {message}") from exc
    return f"{code}: {message}"


class EcsExecutor:
    """Acts on one ECS service: `restart` forces a new deployment, or stops the running tasks when
    `operation` is "stop_task"; `scale_up` updates the desired count whatever `operation` says."""

    def __init__(
        self,
        cluster: str,
        service: str,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        operation: EcsOperation = "force_new_deployment",
        timeout_s: float = 30.0,
    ) -> None:
        self._cluster = cluster
        self._service = service
        self._operation = operation
        config = Config(
            retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
        )
        self._ecs: Any = boto3.session.Session().client(
            "ecs", region_name=region, endpoint_url=endpoint_url, config=config
        )

    @property
    def _where(self) -> str:
        return f"ECS service {self._cluster}/{self._service}"

    def _force_new_deployment(self, params: ActionParams) -> tuple[bool, str]:
        service = self._ecs.update_service(
            cluster=self._cluster, service=self._service, forceNewDeployment=True
        )["service"]
        deployments = service.get("deployments") or [{}]
        return True, f"new deployment {deployments[0].get('id', '')} started for {self._where}"

    def _stop_tasks(self, params: ActionParams) -> tuple[bool, str]:
        pages = self._ecs.get_paginator("list_tasks").paginate(
            cluster=self._cluster, serviceName=self._service, desiredStatus="RUNNING"
        )
        tasks = [arn for page in pages for arn in page["taskArns"]]
        if not tasks:
            return False, f"{self._where} has no running tasks to stop"
        reason = f"opsbot restart for incident {params.incident_id} by {params.requested_by}"
        for arn in tasks:
            self._ecs.stop_task(cluster=self._cluster, task=arn, reason=reason[:255])
        return True, f"stopped {len(tasks)} task(s) of {self._where}; ECS starts replacements"

    def _scale(self, params: ActionParams) -> tuple[bool, str]:
        found = self._ecs.describe_services(cluster=self._cluster, services=[self._service])
        if not found["services"]:
            return False, f"{self._where} not found"
        current = found["services"][0]["desiredCount"]
        target = scale_target(params, current)
        if target < 0:
            return False, f"cannot scale {self._where} to {target} tasks"
        if target == current:
            return True, f"{self._where} already wants {current} tasks"
        self._ecs.update_service(cluster=self._cluster, service=self._service, desiredCount=target)
        return True, f"scaled {self._where} from {current} to {target} tasks"

    async def run(self, params: ActionParams) -> ActionResult:
        started = time.monotonic()
        if params.action == "scale_up":
            operation = self._scale
        elif params.action == "restart" and self._operation == "stop_task":
            operation = self._stop_tasks
        elif params.action == "restart":
            operation = self._force_new_deployment
        else:
            return unsupported(
                params,
                started,
                "ecs",
                "use an http/shell rollback action (update the service to the previous task "
                "definition)",
            )
        try:
            ok, outcome = await asyncio.to_thread(operation, params)
        except ClientError as exc:
            return finish(params, started, ok=False, outcome=f"failed: {_client_failure(exc)}")
        except _OUR_MISTAKE as exc:
            raise PermanentError(f"ECS client not usable: {exc}") from exc
        except BotoCoreError as exc:
            raise TransientError(f"ECS unreachable: {exc}") from exc
        return finish(params, started, ok=ok, outcome=one_line(outcome))

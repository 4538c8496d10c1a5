"""CloudWatch metrics through boto3, and the boto3 plumbing CloudWatch Logs shares.

boto3 is synchronous: every call runs in `asyncio.to_thread`, and botocore errors are
translated into `integrations.errors` in that thread.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from integrations.errors import IntegrationError, PermanentError, RateLimited, TransientError
from integrations.observability.health import gather_all, reading
from integrations.observability.model import Point

DEFAULT_AWS_TIMEOUT_S = 10.0
DEFAULT_AWS_MAX_ATTEMPTS = 2
"""botocore's own retries (first try included); callers fall back on their own."""
AWS_THROTTLE_RETRY_AFTER_S = 2.0
"""AWS throttling answers carry no Retry-After."""
MIN_PERIOD_S = 60
"""Standard-resolution metrics only aggregate over multiples of a minute."""

T = TypeVar("T")

_THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}
)
_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "ExpiredToken",
        "ExpiredTokenException",
    }
)


class AwsService:
    """One lazily built boto3 client for `service`, called in a worker thread."""

    def __init__(
        self,
        service: str,
        region: str,
        endpoint_url: str | None = None,
        timeout_s: float = DEFAULT_AWS_TIMEOUT_S,
        max_attempts: int = DEFAULT_AWS_MAX_ATTEMPTS,
    ) -> None:
        self._service = service
        self._region = region
        self._endpoint_url = endpoint_url
        self._config = Config(
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"mode": "standard", "max_attempts": max_attempts},
        )
        self._client: BaseClient | None = None
        self._lock = threading.Lock()

    async def call(self, what: str, fn: Callable[[BaseClient], T]) -> T:
        """`fn(client)` in a thread; botocore failures become `integrations.errors`."""
        return await asyncio.to_thread(self._call, what, fn)

    def _boto_client(self) -> BaseClient:
        with self._lock:  # concurrent first calls would each build a client
            if self._client is None:
                # A session of its own: boto3's default session is not thread-safe.
                self._client = boto3.session.Session().client(
                    self._service,
                    region_name=self._region,
                    endpoint_url=self._endpoint_url,
                    config=self._config,
                )
            return self._client

    def _call(self, what: str, fn: Callable[[BaseClient], T]) -> T:
        try:
            return fn(self._boto_client())
        except ClientError as exc:
            raise translate_client_error(exc, what) from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            raise TransientError(f"{what}: cannot reach AWS {self._service}: {exc}") from exc
        except BotoCoreError as exc:
            # No credentials, no region, invalid parameters: configuration, not luck.
            raise PermanentError(f"{what}: {exc}") from exc


def translate_client_error(exc: ClientError, what: str) -> IntegrationError:
    """The `integrations.errors` counterpart of an AWS error answer."""
    error = exc.response.get("Error", {})
    code = error.get("Code", "Unknown")
    message = f"{what}: {code}: {error.get('Message', '')}"
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if code in _THROTTLING_CODES or status == 429:
        return RateLimited(message, AWS_THROTTLE_RETRY_AFTER_S)
    if status >= 500:
        return TransientError(message)
    if code in _AUTH_CODES:
        return PermanentError(f"{message} (check the AWS credentials and permissions)")
    return PermanentError(message)


class CloudWatchMetric(NamedTuple):
    namespace: str
    metric: str
    dimensions: Mapping[str, str]
    statistic: str = "Average"  # Average | Sum | Minimum | Maximum | SampleCount


MetricSpec = CloudWatchMetric | tuple[str, str, Mapping[str, str], str]
"""A `CloudWatchMetric` or the same four fields as a plain tuple."""


class CloudWatchMetricsSource:
    """Named CloudWatch metrics via `get_metric_statistics`, fetched concurrently."""

    def __init__(
        self,
        metrics: Mapping[str, MetricSpec],
        region: str,
        endpoint_url: str | None = None,
        timeout_s: float = DEFAULT_AWS_TIMEOUT_S,
        max_attempts: int = DEFAULT_AWS_MAX_ATTEMPTS,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._metrics = {name: CloudWatchMetric(*spec) for name, spec in metrics.items()}
        self._aws = AwsService("cloudwatch", region, endpoint_url, timeout_s, max_attempts)
        self._now = now

    async def series(self, window_s: int, step_s: int) -> dict[str, list[Point]]:
        now = self._now()
        end = datetime.fromtimestamp(now, UTC)
        start = datetime.fromtimestamp(now - window_s, UTC)
        period = max(MIN_PERIOD_S, math.ceil(step_s / MIN_PERIOD_S) * MIN_PERIOD_S)
        names = list(self._metrics)
        results = await gather_all(*(self._one(name, start, end, period) for name in names))
        return dict(zip(names, results, strict=True))

    async def _one(self, name: str, start: datetime, end: datetime, period: int) -> list[Point]:
        spec = self._metrics[name]
        what = f"CloudWatch metric {name} ({spec.namespace}/{spec.metric})"

        def query(client: BaseClient) -> Any:
            return client.get_metric_statistics(
                Namespace=spec.namespace,
                MetricName=spec.metric,
                Dimensions=[{"Name": k, "Value": v} for k, v in spec.dimensions.items()],
                StartTime=start,
                EndTime=end,
                Period=period,
                Statistics=[spec.statistic],
            )

        answer = await self._aws.call(what, query)
        with reading(what):
            points = [
                (p["Timestamp"].timestamp(), float(p[spec.statistic])) for p in answer["Datapoints"]
            ]
        return sorted(points)

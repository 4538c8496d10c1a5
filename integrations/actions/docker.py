"""Docker executor: restarts a container through the Docker Engine API (aiodocker) and reports
whether it came back running."""

from __future__ import annotations

import time
from typing import Any

import aiodocker
import aiohttp

from integrations.actions.base import ActionParams, ActionResult, finish, unsupported
from integrations.errors import PermanentError, TransientError

# aiodocker reports "cannot connect" as a DockerError with this pseudo status.
_UNREACHABLE = 900


def _state_line(container: str, info: dict[str, Any]) -> tuple[bool, str]:
    state = info.get("State") or {}
    if state.get("Running"):
        return True, (
            f"container {container} restarted: running since {state.get('StartedAt', '?')}"
            f" (pid {state.get('Pid', '?')})"
        )
    return False, (
        f"container {container} restarted but is {state.get('Status', 'not running')}"
        f" (exit code {state.get('ExitCode', '?')})"
    )


class DockerExecutor:
    """Restarts one container; `url` is the Docker host (None: DOCKER_HOST or the local socket)."""

    def __init__(self, container: str, url: str | None = None, timeout_s: float = 60.0) -> None:
        self._container = container
        self._url = url
        self._timeout_s = timeout_s

    def _connect(self) -> aiodocker.Docker:
        try:
            return aiodocker.Docker(
                url=self._url, timeout=aiohttp.ClientTimeout(total=self._timeout_s)
            )
        # aiodocker asserts, rather than raises, when no Docker host can be found at all.
        except (ValueError, AssertionError) as exc:
            raise PermanentError(
                f"no usable Docker host ({self._url or 'DOCKER_HOST or the local socket'}): {exc}"
            ) from exc

    async def run(self, params: ActionParams) -> ActionResult:
        started = time.monotonic()
        if params.action != "restart":
            return unsupported(params, started, "docker", "only restart is possible on a container")
        async with self._connect() as docker:
            container = docker.containers.container(self._container)
            try:
                await container.restart(timeout=aiohttp.ClientTimeout(total=self._timeout_s))
                info = await container.show()
            except aiodocker.DockerError as exc:
                if exc.status == _UNREACHABLE or exc.status >= 500:
                    raise TransientError(f"Docker Engine: {exc.message}") from exc
                return finish(params, started, ok=False, outcome=f"failed: {exc.message}")
            except TimeoutError as exc:
                raise TransientError(
                    f"Docker Engine did not answer within {self._timeout_s:g} s"
                ) from exc
            except aiohttp.ClientError as exc:
                raise TransientError(f"Docker Engine: {exc!r}") from exc
        ok, outcome = _state_line(self._container, info)
        return finish(params, started, ok=ok, outcome=outcome)

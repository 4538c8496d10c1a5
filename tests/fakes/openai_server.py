"""A fake OpenAI-compatible server on 127.0.0.1 answering /v1/chat/completions from a script.

Each request pops one step: a final answer, tool calls (parallel allowed), or a failure (HTTP
status with optional Retry-After, a hang past the client's timeout, an unreadable body).
Requests are recorded. Usage is reported as characters / 4 so token counts are meaningful.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response


@dataclass(frozen=True, slots=True)
class Reply:
    """A final assistant message."""

    content: str


@dataclass(frozen=True, slots=True)
class ToolCalls:
    """One assistant turn calling these tools (name, arguments) in parallel."""

    calls: tuple[tuple[str, dict[str, Any]], ...]


@dataclass(frozen=True, slots=True)
class Fail:
    status: int = 500
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Hang:
    seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class BrokenBody:
    """200 with a body that is not JSON."""


Step = Reply | ToolCalls | Fail | Hang | BrokenBody
Scripted = Step | Callable[[dict[str, Any]], Step]
"""A step, or a function of the request body returning one (for answers that quote input)."""


def reply(answer: dict[str, Any] | str) -> Reply:
    return Reply(answer if isinstance(answer, str) else json.dumps(answer))


def tool_calls(*calls: tuple[str, dict[str, Any]]) -> ToolCalls:
    return ToolCalls(tuple(calls))


def invalid_json() -> Reply:
    return Reply("The root cause is probably memory {not json")


def schema_mismatch() -> Reply:
    return reply({"summary": "something broke", "category": "gremlins", "confidence": 7})


def closed_port_url() -> str:
    """A base URL where nothing listens: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.default: Scripted | None = None
        self._steps: deque[Scripted] = deque()
        self._ids = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    def script(self, *steps: Scripted) -> None:
        self._steps.extend(steps)

    def reset(self) -> None:
        self._steps.clear()
        self.requests.clear()
        self.default = None

    @property
    def pending(self) -> int:
        return len(self._steps)

    def sent_text(self) -> str:
        """Everything clients sent, as one string (to assert a secret never left)."""
        return "\n".join(json.dumps(body) for body in self.requests)

    def start(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app(), log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.01)
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=5)

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def completions(request: Request) -> Response:
            body = await request.json()
            self.requests.append(body)
            step = self._next_step(body)
            if isinstance(step, Fail):
                headers = {"retry-after": f"{step.retry_after:g}"} if step.retry_after else {}
                error = {"error": {"message": f"scripted {step.status}", "type": "server_error"}}
                return JSONResponse(error, status_code=step.status, headers=headers)
            if isinstance(step, Hang):
                await asyncio.sleep(step.seconds)
                return JSONResponse({"error": {"message": "hung"}}, status_code=504)
            if isinstance(step, BrokenBody):
                return PlainTextResponse("<html>bad gateway</html>")
            return JSONResponse(self._completion(body, step))

        return app

    def _next_step(self, body: dict[str, Any]) -> Step:
        scripted = self._steps.popleft() if self._steps else self.default
        if scripted is None:
            return Fail(500)
        return scripted(body) if callable(scripted) else scripted

    def _completion(self, body: dict[str, Any], step: Reply | ToolCalls) -> dict[str, Any]:
        if isinstance(step, Reply):
            message: dict[str, Any] = {"role": "assistant", "content": step.content}
            finish = "stop"
            produced = step.content
        else:
            calls = [
                {
                    "id": f"call_{next(self._ids)}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
                for name, args in step.calls
            ]
            message = {"role": "assistant", "content": None, "tool_calls": calls}
            finish = "tool_calls"
            produced = json.dumps(calls)
        prompt_chars = len(json.dumps(body.get("messages", []))) + len(
            json.dumps(body.get("tools", []))
        )
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake-model"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt_chars // 4,
                "completion_tokens": len(produced) // 4,
                "total_tokens": (prompt_chars + len(produced)) // 4,
            },
        }


@pytest.fixture(scope="session")
def _fake_openai_server() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_openai(_fake_openai_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The shared fake server with an empty script and no recorded requests."""
    _fake_openai_server.reset()
    yield _fake_openai_server
    _fake_openai_server.reset()

"""Shell executor: runs a configured argv (never a shell string) with placeholders substituted
per element, under a timeout that kills the whole process group."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time

from integrations.actions.base import (
    OUTPUT_BUDGET,
    ActionParams,
    ActionResult,
    PlaceholderError,
    finish,
    last_line,
    one_line,
    render,
)
from integrations.errors import PermanentError

# How long to keep collecting output after the command exits: a daemon it started may hold the
# pipes open. Past that the result is returned, and the pipes are drained in the background so
# the daemon never meets a closed pipe.
PIPE_GRACE_S = 1.0
_CHUNK = 4096
BASE_ENV = ("PATH", "HOME", "LANG")
_draining: set[asyncio.Task[None]] = set()


class _Capture:
    """One output stream of the command: a pipe of our own, so that waiting for the command does
    not wait for daemons that inherited it, and the last bytes read (bounded in memory)."""

    def __init__(self, budget: int) -> None:
        self._limit = budget * 4  # UTF-8 needs at most 4 bytes a character
        self._data = bytearray()
        self._read_fd, self.write_fd = os.pipe()
        self.reading: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start reading once the command holds its copy of the write end (ours is closed)."""
        os.close(self.write_fd)
        reader = asyncio.StreamReader()
        transport, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(self._read_fd, "rb", 0)
        )
        self.reading = asyncio.create_task(self._drain(reader, transport))

    async def _drain(self, reader: asyncio.StreamReader, transport: asyncio.BaseTransport) -> None:
        try:
            while chunk := await reader.read(_CHUNK):
                self._data += chunk
                del self._data[: -self._limit]
        finally:
            transport.close()

    def discard(self) -> None:
        """Close both ends when the command never started."""
        os.close(self._read_fd)
        os.close(self.write_fd)

    def text(self) -> str:
        return self._data.decode(errors="replace")


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def _outcome(code: int | None, timeout_s: float, stdout: str, stderr: str) -> tuple[bool, str]:
    if code is None:
        return False, f"timed out after {timeout_s:g} s"
    if code < 0:
        return False, f"killed by {signal.Signals(-code).name}"
    if code != 0:
        why = last_line(stderr) or last_line(stdout)
        return False, f"failed with exit {code}" + (f": {why}" if why else "")
    return True, last_line(stdout) or "done (exit 0)"


class ShellExecutor:
    """Runs `argv` with `{service}`, `{replicas}`, `{delta}`, `{incident}` substituted.

    Its environment is PATH, HOME and LANG from the bot's, then `env`, then OPSBOT_ACTION,
    OPSBOT_SERVICE, OPSBOT_INCIDENT and OPSBOT_REQUESTED_BY (where no value is a risk to argv):
    never the bot's other variables, which hold its tokens.
    """

    def __init__(
        self,
        argv: list[str],
        timeout_s: float,
        output_budget: int = OUTPUT_BUDGET,
        env: dict[str, str] | None = None,
    ) -> None:
        if not argv:
            raise ValueError("a shell action needs a command")
        self._argv = list(argv)
        self._timeout_s = timeout_s
        self._budget = output_budget
        self._env = dict(env or {})

    def _environment(self, params: ActionParams) -> dict[str, str]:
        return {
            **{k: os.environ[k] for k in BASE_ENV if k in os.environ},
            **self._env,
            "OPSBOT_ACTION": params.action,
            "OPSBOT_SERVICE": params.service,
            "OPSBOT_INCIDENT": params.incident_id,
            "OPSBOT_REQUESTED_BY": params.requested_by,
        }

    async def run(self, params: ActionParams) -> ActionResult:
        started = time.monotonic()
        try:
            argv = [render(part, params) for part in self._argv]
        except PlaceholderError as exc:
            return finish(params, started, ok=False, outcome=f"refused: {exc}")
        stdout, stderr = _Capture(self._budget), _Capture(self._budget)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout.write_fd,
                stderr=stderr.write_fd,
                env=self._environment(params),
                start_new_session=True,  # its own process group, so a timeout kills it all
            )
        except OSError as exc:
            stdout.discard()
            stderr.discard()
            raise PermanentError(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from exc
        await stdout.start()
        await stderr.start()
        try:
            async with asyncio.timeout(self._timeout_s):
                code = await proc.wait()
        except TimeoutError:
            code = None
        finally:
            if proc.returncode is None:  # timed out, or the caller cancelled us
                _kill_group(proc.pid)
                await proc.wait()
            readers = [c.reading for c in (stdout, stderr) if c.reading is not None]
            _, pending = await asyncio.wait(readers, timeout=PIPE_GRACE_S)
            for reader in pending:
                _draining.add(reader)
                reader.add_done_callback(_draining.discard)
        out, err = stdout.text(), stderr.text()
        ok, outcome = _outcome(code, self._timeout_s, out, err)
        output = out + (f"\n--- stderr ---\n{err}" if err.strip() else "")
        return finish(
            params, started, ok=ok, outcome=one_line(outcome), output=output, budget=self._budget
        )

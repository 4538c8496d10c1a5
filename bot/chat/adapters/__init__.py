"""The chat platforms opsbot knows: how each is switched on, routed to and built.

One `Platform` entry per adapter module; the runtime builds the configured ones, routes name
them by `name`, and `route_problems` says which routes name a platform that cannot be reached.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.app.config import Config, RouteConfig
from bot.chat.adapters.base import ChatAdapter, InboundMessage
from bot.chat.events import EventBus
from bot.store import Store

if TYPE_CHECKING:
    from bot.incidents.delivery import DeliveryStatus


@dataclass(frozen=True, slots=True)
class AdapterContext:
    """What an adapter may need to be built."""

    cfg: Config
    store: Store
    bus: EventBus
    accept: Callable[[InboundMessage], Awaitable[bool]]
    on_status: Callable[[DeliveryStatus], Awaitable[None]]  # a platform's delivery report


@dataclass(frozen=True, slots=True)
class Platform:
    name: str
    credentials: tuple[str, ...]  # "section.key" settings that must all be set to switch it on
    targets: Callable[[Config, RouteConfig], list[str]]  # the channels a route names
    build: Callable[[AdapterContext], ChatAdapter] | None  # None: no adapter in this build yet
    local: bool = False  # in-process (no rate limit, edits need no coalescing)
    enabled_by: Callable[[Config], bool] | None = None  # in place of credentials

    def enabled(self, cfg: Config) -> bool:
        if self.enabled_by is not None:
            return self.enabled_by(cfg)
        return not self.missing(cfg)

    def missing(self, cfg: Config) -> list[str]:
        """The credentials not set."""
        out = []
        for setting in self.credentials:
            section, key = setting.split(".")
            if not getattr(getattr(cfg, section), key):
                out.append(setting)
        return out


def _console(ctx: AdapterContext) -> ChatAdapter:
    from bot.chat.adapters.console import ConsoleAdapter

    return ConsoleAdapter(ctx.store, ctx.bus)


def _slack(ctx: AdapterContext) -> ChatAdapter:
    from bot.chat.adapters.slack import SlackAdapter

    return SlackAdapter(ctx.cfg.slack, ctx.accept)


def _discord(ctx: AdapterContext) -> ChatAdapter:
    from bot.chat.adapters.discord import DiscordAdapter

    return DiscordAdapter(ctx.cfg.discord, ctx.accept)


def _whatsapp(ctx: AdapterContext) -> ChatAdapter:
    from bot.chat.adapters.whatsapp import WhatsAppAdapter

    return WhatsAppAdapter(ctx.cfg, ctx.store, ctx.accept, ctx.on_status)


PLATFORMS: tuple[Platform, ...] = (
    Platform(
        "console",
        (),
        lambda cfg, route: ["console"] if route.console else [],
        _console,
        local=True,
        enabled_by=lambda cfg: cfg.console.enabled,
    ),
    Platform("slack", ("slack.bot_token",), lambda cfg, route: route.slack, _slack),
    Platform("discord", ("discord.bot_token",), lambda cfg, route: route.discord, _discord),
    Platform(
        "whatsapp",
        ("whatsapp.account_sid", "whatsapp.auth_token"),
        # people by name (or numbers): a person's line is their number, whoever starts it
        lambda cfg, route: [n for n in map(cfg.whatsapp_number, route.whatsapp) if n],
        _whatsapp,
    ),
)
BY_NAME = {p.name: p for p in PLATFORMS}


def is_local(platform: str) -> bool:
    p = BY_NAME.get(platform)
    return p is not None and p.local


def rate_limited(destination: str) -> bool:
    """Whether an outbox destination ("platform:channel") is a remote chat API's channel."""
    p = BY_NAME.get(destination.split(":", 1)[0])
    return p is not None and not p.local


def route_problems(cfg: Config, built: set[str] | None = None) -> list[str]:
    """Routes naming a platform without its credentials (or, given the adapters `built`,
    without an adapter): each problem names the route, the platform and the missing keys."""
    where = cfg.source_path or "(embedded default)"
    problems = []
    for i, route in enumerate(cfg.routes):
        for p in PLATFORMS:
            if not getattr(route, p.name, None) or p.enabled_by is not None:
                continue
            missing = p.missing(cfg)
            if missing:
                problems.append(
                    f"{where}: routes[{i}].{p.name}: routes to {p.name}, but "
                    f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set"
                )
            elif built is not None and p.name not in built:
                problems.append(
                    f"{where}: routes[{i}].{p.name}: routes to {p.name}, which has no adapter "
                    "in this version of opsbot"
                )
    return problems

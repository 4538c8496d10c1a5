"""A dedicated asyncpg connection beside the pool (the leader's lock, LISTEN), with TCP
keepalives so a vanished peer is noticed within seconds on both sides."""

from __future__ import annotations

import asyncpg
from sqlalchemy.engine import make_url

from bot.app.config import ClusterConfig
from bot.store import Store


async def connect(store: Store, cfg: ClusterConfig) -> asyncpg.Connection:
    url = store.engine.url
    keepalive = str(max(1, int(cfg.heartbeat_s)))
    return await asyncpg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
        timeout=max(cfg.heartbeat_s, 5.0),
        server_settings={
            "application_name": "opsbot-cluster",
            "tcp_keepalives_idle": keepalive,
            "tcp_keepalives_interval": keepalive,
            "tcp_keepalives_count": "3",
        },
    )

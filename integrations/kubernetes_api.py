"""The Kubernetes API client both the executor and the observability source use: one
kubernetes_asyncio configuration (an api_url and token, or the in-cluster service account) and
one reading of the API server's error Status."""

from __future__ import annotations

import json

from kubernetes_asyncio.client import ApiException, Configuration
from kubernetes_asyncio.config import ConfigException, load_incluster_config

from integrations.errors import PermanentError


def configuration(api_url: str | None, token: str = "", verify_ssl: bool = True) -> Configuration:
    """`api_url` None means the in-cluster service account (its token and CA)."""
    config = Configuration(host=api_url)
    if api_url is None:
        try:
            load_incluster_config(client_configuration=config)
        except ConfigException as exc:
            raise PermanentError(
                f"no Kubernetes api_url configured and not running in a cluster: {exc}"
            ) from exc
    if token:
        config.api_key = {"BearerToken": token}
        config.api_key_prefix = {"BearerToken": "Bearer"}
    config.verify_ssl = verify_ssl
    return config


def api_message(exc: ApiException) -> str:
    """The `message` of the Status object the API server answers errors with."""
    try:
        return str(json.loads(exc.body or b"")["message"])
    except (TypeError, ValueError, KeyError):
        return f"{exc.status} {exc.reason}"

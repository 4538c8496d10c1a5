"""Action executors: each runs one approved action (restart, scale_up, rollback) on its target."""

from integrations.actions.base import ActionParams, ActionResult, Executor, build_summary
from integrations.actions.docker import DockerExecutor
from integrations.actions.ecs import EcsExecutor
from integrations.actions.http import HttpExecutor
from integrations.actions.kubernetes import KubernetesExecutor
from integrations.actions.shell import ShellExecutor

__all__ = [
    "ActionParams",
    "ActionResult",
    "DockerExecutor",
    "EcsExecutor",
    "Executor",
    "HttpExecutor",
    "KubernetesExecutor",
    "ShellExecutor",
    "build_summary",
]

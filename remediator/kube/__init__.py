"""The cluster client layer: the only package that imports kubernetes_asyncio."""

from remediator.kube.client import JSON, Kube
from remediator.kube.errors import KubeError

__all__ = ["JSON", "Kube", "KubeError"]

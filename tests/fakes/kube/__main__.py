"""Serve the fake API server until killed, for the live suite where no cluster exists::

    python -m tests.fakes.kube --kubeconfig /tmp/kc &
    KUBECONFIG=/tmp/kc python -m pytest tests/live

It runs with ``dependents`` (garbage collector, Argo ReplicaSets) so it behaves as a small
cluster would; ``--without-crds`` leaves Argo Rollouts and cert-manager out of it (their
API groups then 404, as on a cluster without those CRDs). The kubeconfig is written once
the server listens, and a line saying so is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from .resources import DEFAULT_RESOURCES
from .server import FakeKube

CRD_GROUPS = ("argoproj.io", "cert-manager.io")


async def serve(kubeconfig: Path, *, crds: bool) -> None:
    resources = tuple(rt for rt in DEFAULT_RESOURCES if crds or rt.group not in CRD_GROUPS)
    fake = FakeKube(token="fake-kube-token", resources=resources, dependents=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with fake.running() as url:
        fake.write_kubeconfig(kubeconfig)
        print(f"fake kube serving {url}; kubeconfig {kubeconfig}", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.kube", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True, help="where to write it")
    parser.add_argument("--without-crds", action="store_true", help="no Argo, no cert-manager")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.kubeconfig, crds=not args.without_crds))


if __name__ == "__main__":
    main()

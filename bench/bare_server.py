"""The benchmark baseline: the least an aiohttp webhook receiver can do.

One ``POST /api/v1/alerts`` handler that reads the body, ``json.loads`` it and answers
200 ``{"status":"ok"}``; plus ``GET /readyz`` so the harness can wait for it the same
way it waits for the real server. No auth, no validation, no storage, no logging.

    python bench/bare_server.py --port 8080
"""

from __future__ import annotations

import argparse
import json

from aiohttp import web

_OK = b'{"status":"ok"}'


async def alerts(request: web.Request) -> web.Response:
    json.loads(await request.read())
    return web.Response(body=_OK, content_type="application/json")


async def readyz(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/api/v1/alerts", alerts)
    app.router.add_get("/readyz", readyz)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(make_app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()

"""``Slack``: the only door to the Slack Web API.

A thin wrapper over slack_sdk's AsyncWebClient with its built-in retry handlers (rate
limits honour Retry-After; dropped connections and 5xx are retried), so every caller
gets one error type with the API's error code in it.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from remediator.errors import RemediatorError

Blocks = list[dict[str, Any]]


class SlackError(RemediatorError):
    """A Slack call failed; the message carries Slack's error code."""


class Slack:
    def __init__(self, token: str, base_url: str, *, timeout: int = 10) -> None:
        self._client = AsyncWebClient(
            token=token,
            base_url=base_url,
            timeout=timeout,
            retry_handlers=[
                AsyncRateLimitErrorRetryHandler(max_retry_count=2),
                AsyncConnectionErrorRetryHandler(max_retry_count=2),
                AsyncServerErrorRetryHandler(max_retry_count=2),
            ],
        )

    async def close(self) -> None:
        if self._client.session is not None:
            await self._client.session.close()

    async def post(
        self, channel: str, text: str, blocks: Blocks | None = None, *, thread: str | None = None
    ) -> str:
        """Post a message (or a reply in ``thread``); returns its ts."""
        response = await self._call(
            "chat.postMessage",
            self._client.chat_postMessage(
                channel=channel, text=text, blocks=blocks, thread_ts=thread
            ),
        )
        return str(response["ts"])

    async def update(self, channel: str, ts: str, text: str, blocks: Blocks) -> None:
        await self._call(
            "chat.update",
            self._client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks),
        )

    async def ephemeral(self, channel: str, user: str, text: str) -> None:
        await self._call(
            "chat.postEphemeral",
            self._client.chat_postEphemeral(channel=channel, user=user, text=text),
        )

    async def group_members(self, group: str) -> list[str]:
        response = await self._call(
            "usergroups.users.list", self._client.usergroups_users_list(usergroup=group)
        )
        return [str(u) for u in response.get("users") or []]

    async def _call(self, method: str, call: Any) -> Any:
        try:
            return await call
        except SlackApiError as exc:
            raise SlackError(f"slack {method}: {exc.response.get('error', 'error')}") from exc
        except (SlackClientError, OSError, TimeoutError) as exc:
            raise SlackError(f"slack {method}: {type(exc).__name__}: {exc}") from exc

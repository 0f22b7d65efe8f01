"""pytest fixtures for the fake Slack Web API. Register them with ``pytest_plugins`` (in
``tests/conftest.py``) or ``-p tests.fakes.slack.fixtures``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest_asyncio

from .server import FakeSlack

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

FAKE_SLACK_BOT_TOKEN = "xoxb-test"
FAKE_SLACK_SIGNING_SECRET = "test-signing-secret"
FAKE_SLACK_USERGROUPS = {"S1": ["U1", "U2"]}


@pytest_asyncio.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    """A running :class:`FakeSlack` (``.url``, ``.api_url``, ``.bot_token`` "xoxb-test",
    ``.signing_secret`` "test-signing-secret", user group S1 = U1, U2; no faults)."""
    fake = FakeSlack(
        bot_token=FAKE_SLACK_BOT_TOKEN,
        signing_secret=FAKE_SLACK_SIGNING_SECRET,
        usergroups=FAKE_SLACK_USERGROUPS,
    )
    async with fake.running():
        yield fake


@pytest_asyncio.fixture
async def fake_slack_client(fake_slack: FakeSlack) -> AsyncIterator[AsyncWebClient]:
    """A real ``slack_sdk`` AsyncWebClient for ``fake_slack`` on its own aiohttp session
    (closed after the test), with slack_sdk's default retry handlers."""
    async with fake_slack.web_client() as client:
        yield client

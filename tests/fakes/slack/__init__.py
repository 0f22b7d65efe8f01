"""An HTTP-level fake Slack Web API for tests, plus signed interaction requests.

The real ``slack_sdk`` clients talk to it over HTTP on 127.0.0.1; nothing in ``remediator``
knows it exists. Typical use::

    from tests.fakes.slack import FakeSlack, interactions

    fake = FakeSlack(bot_token="xoxb-test", usergroups={"S1": ["U1", "U2"]})
    async with fake.running() as url:
        ...  # code under test uses AsyncWebClient(token="xoxb-test", base_url=f"{url}/api/")
        [post] = fake.calls("chat.postMessage")
        assert post.params["blocks"][0]["type"] == "section"
        click = await fake.click(our_url, "C123", post.response["ts"], "approve", user_id="U1")

or the pytest fixtures in :mod:`tests.fakes.slack.fixtures` (``fake_slack``,
``fake_slack_client``). Modules: ``models`` (recorded/stored dataclasses), ``state`` (the
workspace and Web API methods), ``blocks`` (Block Kit limits), ``app`` (HTTP), ``server``
(:class:`FakeSlack`), ``interactions`` (payloads, form bodies, signing).
"""

from . import interactions
from .blocks import find_action, validate_blocks
from .interactions import block_action_payload, form_body, parse_form_body, sign, signed_request
from .models import RESPONSE_URL, Call, Ephemeral, Message
from .server import ClickResult, FakeSlack, FakeSlackError, Fault
from .state import SlackError

__all__ = [
    "RESPONSE_URL",
    "Call",
    "ClickResult",
    "Ephemeral",
    "FakeSlack",
    "FakeSlackError",
    "Fault",
    "Message",
    "SlackError",
    "block_action_payload",
    "find_action",
    "form_body",
    "interactions",
    "parse_form_body",
    "sign",
    "signed_request",
    "validate_blocks",
]

"""The incident pages in real headless Chromium: the list and its filters and paging, the
detail page's timeline against the JSON API, hostile text that stays text, and sign-in."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from remediator.app import create_app
from remediator.settings import Settings
from tests.conftest import ClientFactory

from .conftest import (
    ARTIFACTS,
    IMG,
    JS_LOG,
    SCRIPT,
    Dialogs,
    PageFactory,
    Seeded,
    with_basic_auth,
)

# An href the pages may render: http(s), or a path on this server.
SAFE_HREF = re.compile(r"(https?://|/(?!/))", re.IGNORECASE)


async def listed(page: Page) -> list[str]:
    """The incident ids in the list, top to bottom."""
    ids: list[str] = await page.locator("tr.incident").evaluate_all(
        "rows => rows.map(r => r.dataset.id)"
    )
    return ids


async def submit_filters(page: Page, **fields: str) -> None:
    """Fill the filter form the way a person would and press Filter."""
    form = page.locator("form.filters")
    for name, value in fields.items():
        if name == "status":
            await form.locator("select[name=status]").select_option(value)
        else:
            await form.locator(f"input[name={name}]").fill(value)
    async with page.expect_navigation():
        await form.get_by_role("button", name="Filter").click()


async def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    print(f"screenshot: {path}")


async def test_list_shows_incidents_and_the_form_narrows_them(
    seeded: Seeded, open_page: PageFactory
):
    ids = seeded.ids
    page = await open_page()
    response = await page.goto(seeded.url("/incidents"))
    assert response is not None
    assert response.status == 200
    assert await listed(page) == [ids["D"], ids["C"], ids["B"], ids["A"]]
    row = page.locator(f'tr.incident[data-id="{ids["C"]}"]')
    assert await row.locator(".badge").inner_text() == "resolved"
    assert "KubePersistentVolumeFillingUp" in await row.inner_text()
    await screenshot(page, "incident-list")

    await submit_filters(page, status="open", namespace="prod")
    assert "status=open" in page.url
    assert "namespace=prod" in page.url
    assert await listed(page) == [ids["A"]]
    # The form shows the filters in force.
    assert await page.locator("select[name=status]").input_value() == "open"
    assert await page.locator("input[name=namespace]").input_value() == "prod"

    await submit_filters(page, status="", namespace="", team="web-team")
    assert await listed(page) == [ids["B"], ids["A"]]
    await submit_filters(page, team="", runbook="disk-notify")
    assert await listed(page) == [ids["C"]]
    await submit_filters(page, runbook="", status="resolved")
    assert await listed(page) == [ids["C"]]

    # The time range bounds when remediator opened each incident.
    opened = datetime.fromisoformat((await seeded.detail("B"))["created_at"])
    await submit_filters(page, status="", since=opened.isoformat())
    assert await listed(page) == [ids["D"], ids["C"], ids["B"]]
    await submit_filters(page, since="", until=opened.isoformat())
    assert await listed(page) == [ids["A"]]
    tomorrow = (opened + timedelta(days=1)).date().isoformat()
    await submit_filters(page, until="", since=tomorrow)
    assert await listed(page) == []
    assert await page.locator(".empty").inner_text() == "No incidents match."

    await page.get_by_role("link", name="Clear").click()
    await page.wait_for_url(seeded.url("/incidents"))
    assert len(await listed(page)) == 4


async def test_older_link_pages_through_with_the_same_filters(
    seeded: Seeded, open_page: PageFactory
):
    ids = seeded.ids
    page = await open_page()
    await page.goto(seeded.url("/incidents?limit=2"))
    assert await listed(page) == [ids["D"], ids["C"]]
    await page.get_by_role("link", name="Older →").click()
    await page.wait_for_url(re.compile(r"cursor="))
    assert await listed(page) == [ids["B"], ids["A"]]
    assert await page.get_by_role("link", name="Older →").count() == 0
    await page.get_by_role("link", name="← Newest").click()
    await page.wait_for_url(re.compile(r"/incidents\?limit=2$"))
    assert await listed(page) == [ids["D"], ids["C"]]

    await page.goto(seeded.url("/incidents?limit=1&status=open"))
    assert await listed(page) == [ids["D"]]
    await page.get_by_role("link", name="Older →").click()
    await page.wait_for_url(re.compile(r"cursor="))
    assert await listed(page) == [ids["B"]]  # C is resolved: the filter carried over


async def test_detail_shows_every_event_in_order(seeded: Seeded, open_page: PageFactory):
    api = await seeded.detail("A")
    page = await open_page()
    await page.goto(seeded.url("/incidents"))
    async with page.expect_navigation():
        await page.locator(f'tr.incident[data-id="{seeded.ids["A"]}"] a.incident-link').click()
    assert page.url == seeded.url(f"/incidents/{seeded.ids['A']}")

    events = page.locator("ol.timeline > li.event")
    assert await events.count() == len(api["events"])
    shown = await events.evaluate_all("items => items.map(i => [i.id, i.dataset.kind])")
    assert shown == [[f"event-{e['id']}", e["kind"]] for e in api["events"]]
    kinds = [e["kind"] for e in api["events"]]
    for kind in ("received", "matched", "planned", "context", "approval_requested"):
        assert kind in kinds
    assert kinds[-3:] == ["executed", "verified", "context"]
    for i, event in enumerate(api["events"]):
        item = events.nth(i)
        assert await item.locator(".message").inner_text() == event["message"]
        assert await item.locator(".kind").inner_text() == event["kind"]
        assert await item.locator(".stage").inner_text() == event["stage"]

    # Who decided: the refused attempt and the approval name their person.
    denied = page.locator('li.event[data-kind="approval_denied"]')
    assert await denied.locator(".by").inner_text() == "by U9"
    approved = page.locator('li.event[data-kind="approved"]')
    assert await approved.locator(".by").inner_text() == "by U1"

    # The runbook's file and version, as matched recorded them.
    matched = page.locator('li.event[data-kind="matched"] .runbook-source')
    assert "version 7" in await matched.inner_text()
    assert "crashloop.yaml" in await matched.inner_text()
    runbook_row = page.locator("table.runbooks tbody tr")
    assert (await runbook_row.locator("td").all_inner_texts())[:3] == [
        "crashloop",
        "7",
        "crashloop.yaml",
    ]

    header = page.locator("dl.facts")
    for text in ("critical", "prod", "web-team", api["fingerprint"], "2025-05-01 10:00:00 UTC"):
        assert text in await header.inner_text()
    alertmanager = await page.locator("a.alertmanager").get_attribute("href")
    assert alertmanager is not None
    assert alertmanager.startswith("http://alertmanager:9093/#/alerts?filter=%7B")
    prometheus = await page.locator("a.prometheus").get_attribute("href")
    assert prometheus == "http://prometheus:9090/graph?g0.expr=up"

    # Context snapshots as readable sections.
    snapshots = page.locator(".context")
    assert await snapshots.count() == 2
    opened = snapshots.first
    assert "Replicas desired" in await opened.locator("table.status").inner_text()
    pods = opened.locator("table.pods tbody tr")
    assert await pods.count() == 2
    worst = await pods.first.inner_text()
    for text in ("web-7f9-abcde", "7", "CrashLoopBackOff", "OOMKilled (exit 137)"):
        assert text in worst
    assert "BackOff" in await opened.locator("ul.k8s-events").inner_text()
    log = await opened.locator("pre.logs").inner_text()
    assert log.splitlines() == ["starting web 1.4.2", JS_LOG, "exiting"]
    grafana = opened.locator("ul.context-links a", has_text="grafana.example")
    assert await grafana.get_attribute("href") == "https://grafana.example/d/x?var-ns=prod"

    execution = await page.locator("table.executions tbody tr").first.inner_text()
    for text in ("crashloop v7", "restart", "Deployment/prod/web", "live", "verified"):
        assert text in execution
    await screenshot(page, "incident-detail")


async def test_hostile_text_stays_text(seeded: Seeded, open_page: PageFactory, dialogs: Dialogs):
    # No CSP here: escaping alone must keep every payload inert.
    page = await open_page(bypass_csp=True)
    for name in ("A", "D"):
        for path in ("/incidents", f"/incidents/{seeded.ids[name]}"):
            await page.goto(seeded.url(path))
            await page.wait_for_load_state("load")
            assert await page.locator("script").count() == 0, path
            assert await page.locator("img").count() == 0, path
            hrefs: list[Any] = await page.locator("a").evaluate_all(
                "links => links.map(a => a.getAttribute('href'))"
            )
            assert hrefs
            unsafe = [h for h in hrefs if not SAFE_HREF.match(h or "")]
            assert unsafe == [], path
    await page.goto(seeded.url(f"/incidents/{seeded.ids['A']}"))
    assert await page.get_by_role("cell", name=SCRIPT, exact=True).count() == 1  # the label
    assert IMG in await page.locator("p.summary").inner_text()
    dashboard = page.locator("ul.context-links li", has_text="dashboard:").first
    assert await dashboard.inner_text() == "dashboard: javascript:alert(3)"
    assert await dashboard.locator("a").count() == 0
    await page.goto(seeded.url(f"/incidents/{seeded.ids['D']}"))
    links = await page.locator("ul.incident-links").inner_text()
    assert "Alertmanager: javascript:alert(3)" in links
    assert "Prometheus: javascript:alert(3)" in links
    await page.wait_for_timeout(200)  # an onerror or a timer would have fired by now
    assert dialogs.seen == []


async def test_a_browser_without_credentials_is_asked_to_sign_in(
    aiohttp_client: ClientFactory, settings: Settings, open_page: PageFactory
):
    client = await aiohttp_client(create_app(with_basic_auth(settings)))
    url = str(client.make_url("/incidents"))
    # The server challenges with Basic, which a browser answers with its sign-in prompt;
    # headless Chromium has nobody to ask and cancels. (A Bearer challenge would show the
    # 401 page instead: a browser cannot answer it.)
    page = await open_page(http_credentials=None)
    with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
        await page.goto(url)
    # Wrong credentials are tried once; then the browser shows the 401 page.
    page = await open_page(http_credentials={"username": "oncall", "password": "wrong"})
    response = await page.goto(url)
    assert response is not None
    assert response.status == 401
    assert await page.locator("h1").inner_text() == "Sign in"
    page = await open_page()
    response = await page.goto(url)
    assert response is not None
    assert response.status == 200
    assert await page.locator("h1").inner_text() == "Incidents"
    assert await page.locator(".empty").inner_text() == "No incidents match."

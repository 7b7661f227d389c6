"""The live dashboard at `GET /`, in real headless Chromium, against a real worker.

Chromium is Debian's (`apt-get install chromium`), driven by Playwright for Python;
`playwright install` is never needed. The test also refreshes the screenshots in docs/.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from pathlib import Path

from playwright.sync_api import Browser, expect

from scoring.api import WaitingForSales
from tests.integration.browser import look_up, watch
from tests.integration.harness import REPO, Deployment
from tests.integration.kafka_server import KafkaServer

DOCS = REPO / "docs"
TOKEN = "dashboard-test-token"
WAIT_MS = 30_000  # the funnel and lookup tables may trail the transitions topic by a moment


def mql_events(lead: str) -> list[str]:
    """A VP at a 400-employee company who requests a demo: fit 45, engagement 40, an MQL."""
    now = time.time()

    def at(seconds: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - 60 + seconds))

    return [
        json.dumps({"type": "identify", "messageId": f"{lead}-1", "userId": lead,
                    "timestamp": at(0),
                    "traits": {"email": "kim@bigco.example", "title": "VP Sales",
                               "company": {"employees": 400}}}),
        json.dumps({"type": "track", "messageId": f"{lead}-2", "userId": lead,
                    "timestamp": at(1), "event": "Demo Requested"}),
    ]  # fmt: skip


def test_dashboard_shows_funnel_feed_and_score_breakdown_of_a_new_mql(
    kafka: KafkaServer, tmp_path: Path, browser: Browser
) -> None:
    deployment = Deployment(kafka, tmp_path)
    lead = f"dash-{uuid.uuid4().hex[:8]}"
    worker = deployment.worker()
    worker.env["LEADSCORE_API_TOKEN"] = TOKEN
    with worker:
        worker.wait_ready()
        deployment.produce(mql_events(lead))
        transitions = deployment.transitions(until=1)
        assert [(t.lead_id, t.from_stage, t.to_stage) for t in transitions] == [
            (lead, "lead", "mql")
        ], worker.log_tail()
        home = f"http://127.0.0.1:{worker.port}/"

        # A laptop screen; the token comes in the URL fragment, as a shared link would carry it.
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems = watch(page)
        page.goto(f"{home}#token={TOKEN}")

        mql = page.locator('#funnel [data-stage="mql"]')
        expect(mql).to_have_attribute("data-count", "1", timeout=WAIT_MS)
        expect(mql.locator(".count")).to_have_text("1")
        expect(page.locator('#funnel [data-stage="sql"]')).to_have_attribute("data-count", "0")
        expect(page.locator("#conversion")).to_contain_text("median time to SQL")

        row = page.locator(f'#feed [data-lead="{lead}"]')
        expect(row).to_have_count(1, timeout=WAIT_MS)
        expect(row).to_contain_text(lead)
        expect(row.locator(".chip")).to_have_text(["Lead", "MQL"])
        expect(page.locator("#top-leads")).to_contain_text(lead, timeout=WAIT_MS)
        assert TOKEN not in page.url, "the token stays out of the address bar"

        look_up(page, lead)
        result = page.locator("#lookup-result")
        expect(result.locator("h3")).to_have_text(lead, timeout=WAIT_MS)
        expect(result.locator(".lead-title .chip")).to_have_text("MQL")
        breakdown = result.locator("#breakdown")
        for rule, kind in [
            ("demo-requested", "engagement"),
            ("decision-maker", "fit"),
            ("company-size", "fit"),
        ]:
            bar = breakdown.locator(f'[data-rule="{rule}"][data-kind="{kind}"]')
            expect(bar).to_be_visible()
            expect(bar.locator(".label")).to_have_text(rule)
            assert float(bar.locator("rect.bar").get_attribute("width") or 0) > 0, rule
        expect(result.locator('.criterion[data-state="unknown"]')).to_have_count(4)  # BANT
        expect(result.locator(".recent-block li")).to_have_count(1)

        page.wait_for_timeout(2_500)  # another poll round: its requests must be clean too
        assert problems == []
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=DOCS / "dashboard.png", full_page=True, animations="disabled")
        page.close()

        # A phone: one column, the same content.
        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        problems = watch(phone)
        phone.goto(f"{home}#token={TOKEN}")
        expect(phone.locator(f'#feed [data-lead="{lead}"]')).to_have_count(1, timeout=WAIT_MS)
        look_up(phone, lead)
        expect(phone.locator('#breakdown [data-rule="demo-requested"]')).to_be_visible(
            timeout=WAIT_MS
        )
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390, "no sideways scroll"
        assert problems == []
        phone.screenshot(path=DOCS / "dashboard-phone.png", full_page=True, animations="disabled")
        phone.close()

        # Without a token: the page asks for one, then works; a missing lead is said politely,
        # and an id full of markup stays text.
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems = watch(page)
        page.goto(home)
        expect(page.locator("#token-form")).to_be_visible(timeout=WAIT_MS)
        page.fill("#token-input", TOKEN)
        page.click("#token-form button[type=submit]")
        expect(page.locator("#token-form")).to_be_hidden()
        expect(page.locator('#funnel [data-stage="mql"]')).to_have_attribute(
            "data-count", "1", timeout=WAIT_MS
        )
        hostile = "<img src=x onerror=alert(1)>"
        look_up(page, hostile)
        expect(page.locator("#lookup-result")).to_contain_text("No such lead", timeout=WAIT_MS)
        expect(page.locator("#lookup-result")).to_contain_text(hostile)
        assert page.locator("#lookup-result img").count() == 0
        # The browser itself reports the 401s and the 404 in the console; nothing else may.
        assert [p for p in problems if "status of 401" not in p and "status of 404" not in p] == []
        page.close()


def sql_events(lead: str, qualified_ago: float, *, acted: bool = False) -> list[str]:
    """The VP of `mql_events` qualified by BANT `qualified_ago` seconds ago (an SQL that
    waits for a rep, under the example rules' 4-hour SLA); with `acted`, a rep's call a
    second later."""
    start = time.time() - qualified_ago - 2

    def track(n: int, seconds: float, event: str, **properties: object) -> str:
        return json.dumps({"type": "track", "messageId": f"{lead}-{n}", "userId": lead,
                           "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                                      time.gmtime(start + seconds)),
                           "event": event, "properties": properties})  # fmt: skip

    bant = {"budget": True, "authority": True, "need": True}
    identify = json.loads(mql_events(lead)[0])
    identify["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(start))
    lines = [
        json.dumps(identify),
        track(2, 1, "Demo Requested"),
        track(3, 2, "Qualification Updated", framework="BANT", criteria=bant),
    ]
    if acted:
        lines.append(track(4, 3, "Sales Contacted", channel="phone"))
    return lines


def test_dashboard_counts_down_the_sqls_waiting_for_a_rep(
    kafka: KafkaServer, tmp_path: Path, browser: Browser
) -> None:
    deployment = Deployment(kafka, tmp_path)
    tag = uuid.uuid4().hex[:6]
    fresh, late, escalated, called = (f"{name}-{tag}" for name in ("fresh", "late", "esc", "call"))
    hour = 3600.0
    with deployment.worker() as worker:
        worker.wait_ready()
        deployment.produce(
            sql_events(fresh, 60)  # due in 3 h 59 min
            + sql_events(late, 5 * hour)  # due an hour ago; escalates in 3 h
            + sql_events(escalated, 9 * hour)  # escalated an hour ago
            + sql_events(called, 60, acted=True)  # a rep called: not waiting
        )
        transitions = deployment.transitions(until=8)
        assert sorted((t.lead_id, t.to_stage) for t in transitions if t.to_stage == "sql") == [
            (lead, "sql") for lead in sorted((fresh, late, escalated, called))
        ], worker.log_tail()
        home = f"http://127.0.0.1:{worker.port}/"
        with urllib.request.urlopen(f"{home}sales/waiting") as answer:
            waiting = WaitingForSales.model_validate_json(answer.read())
        assert (waiting.waiting, waiting.overdue, waiting.sla_hours) == (3, 2, 4.0)
        assert [(lead.lead_id, lead.status) for lead in waiting.leads] == [
            (escalated, "escalated"), (late, "breached"), (fresh, "on_time"),
        ]  # fmt: skip
        assert 3.9 * hour < waiting.leads[2].seconds_left < 4 * hour
        with urllib.request.urlopen(f"{home}metrics") as answer:
            metrics = answer.read().decode()
        assert 'leadscore_sqls_waiting{overdue="true"} 2.0' in metrics
        assert 'leadscore_sqls_waiting{overdue="false"} 1.0' in metrics

        page = browser.new_page(viewport={"width": 1280, "height": 900})
        problems = watch(page)
        page.goto(home)
        rows = page.locator("#waiting li[data-lead]")
        expect(rows).to_have_count(3, timeout=WAIT_MS)
        assert rows.evaluate_all("rows => rows.map(row => row.dataset.lead)") == [
            escalated, late, fresh,
        ]  # fmt: skip
        expect(rows.locator(".chip")).to_have_text(["escalated", "SLA breached", "on time"])
        expect(page.locator("#waiting-summary")).to_have_text("3 waiting · 2 overdue · SLA 4 h")
        countdown = page.locator(f'#waiting [data-lead="{fresh}"] .countdown')
        expect(countdown).to_have_text(re.compile(r"^3:5\d:\d\d left$"))
        before = countdown.text_content()
        expect(countdown).not_to_have_text(before or "", timeout=3_000)  # it ticks
        overdue = page.locator(f'#waiting [data-lead="{late}"] .countdown')
        expect(overdue).to_have_text(re.compile(r"^overdue 1:0\d:\d\d$"))
        # The follow-up figures of /funnel: one SLA met, two breached, one escalated.
        expect(page.locator("#follow-up")).to_have_text(
            "SLA kept 33% of 3 · median 1 min to first action · 1 escalated", timeout=WAIT_MS
        )
        DOCS.mkdir(exist_ok=True)
        page.locator(".area-waiting").screenshot(path=DOCS / "dashboard-sales.png")

        page.click(f'#waiting [data-lead="{fresh}"] button')
        result = page.locator("#lookup-result")
        expect(result.locator("h3")).to_have_text(fresh, timeout=WAIT_MS)
        expect(result.locator(".lead-title .chip")).to_have_text("SQL")

        # A rep calls the fresh lead: it leaves the panel at the next poll.
        call = sql_events(fresh, 60, acted=True)[-1].replace(f"{fresh}-4", f"{fresh}-call")
        deployment.produce([call])
        expect(rows).to_have_count(2, timeout=WAIT_MS)
        expect(page.locator("#waiting-summary")).to_have_text("2 waiting · 2 overdue · SLA 4 h")
        page.wait_for_timeout(2_500)  # another poll round: its requests must be clean too
        assert problems == []
        page.close()

        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        problems = watch(phone)
        phone.goto(home)
        expect(phone.locator("#waiting li[data-lead]")).to_have_count(2, timeout=WAIT_MS)
        expect(phone.locator(f'#waiting [data-lead="{late}"] .countdown')).to_be_visible()
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390, "no sideways scroll"
        assert problems == []
        phone.close()

"""The `leadscore whatif --html` report in headless Chromium: it opens offline, with no
console errors and no request beyond its own file, and its charts are drawn. The test also
refreshes the screenshot in docs/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import Browser, Request

from streams.dev.traffic import generate
from tests.integration.browser import watch
from tests.integration.harness import REPO

DOCS = REPO / "docs"


def test_the_html_report_is_self_contained_and_draws_its_charts(
    browser: Browser, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(m) + "\n" for m in generate(6000, 600, seed=11)))
    example = (REPO / "scoring" / "example_rules.yaml").read_text()
    proposed = tmp_path / "proposed.yaml"
    proposed.write_text(
        example.replace('version: "2026-12-example"', 'version: "2026-12-demo-weighs-more"')
        .replace(
            "event: Demo Requested\n      points: 40", "event: Demo Requested\n      points: 60"
        )
        .replace("min_engagement: 40", "min_engagement: 45")
    )
    report = tmp_path / "report.html"
    run = subprocess.run(
        [sys.executable, "-m", "streams.cli.main", "whatif", str(events), "--rules", str(proposed),
         "--html", str(report)],
        capture_output=True, text=True, cwd=REPO, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr

    page = browser.new_page(viewport={"width": 1340, "height": 900})
    problems = watch(page)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(_url(request)))
    page.goto(report.as_uri())
    page.wait_for_load_state("load")

    assert requests == [report.as_uri()], requests  # nothing fetched: it works offline
    assert problems == []
    summary = page.locator("#summary").inner_text()
    assert "leads end in another stage" in summary and "conversion" in summary
    assert page.locator("#changes li").all_inner_texts() == [
        "engagement rule demo-requested changed: points: 40.0 -> 60.0",
        "stages.mql.min_engagement: 40.0 -> 45.0",
    ]
    charts = page.locator("#charts svg")
    assert charts.count() == 6
    for index in range(6):
        chart = charts.nth(index)
        box = chart.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100
        assert chart.locator("rect, polyline").count() > 0
    assert page.locator("#leads tr").count() > 1  # some leads change stage, with reasons
    page.screenshot(path=DOCS / "whatif-report.png", full_page=False, animations="disabled")


def _url(request: Request) -> str:
    return request.url

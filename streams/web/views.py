"""The worker's web API and dashboard.

| path | what |
| --- | --- |
| GET /health | 200 once ready (topics, partitions and state); never needs a token |
| GET /metrics | Prometheus text; never needs a token |
| GET /leads/{lead_id} | stage, scores, explanation, recent transitions; a merged id: 307 |
| GET /identities/email/{address} | 307 to the lead holding an email (`/leads/{email}` too) |
| GET /leads/top?stage=mql&limit=10 | hottest leads by engagement, across all workers |
| GET /sales/waiting?limit=20 | SQLs waiting for a rep, most overdue first, across all workers |
| GET /funnel | leads per stage, transitions per day, MQL-to-SQL conversion, sales follow-up |
| GET /transitions/recent?limit=20 | the latest transitions, newest first |
| GET / and /static/... | the dashboard |

With a token set (LEADSCORE_API_TOKEN), everything but /health, /metrics and
the dashboard's own files needs `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import wraps
from importlib import resources
from typing import Any
from urllib.parse import quote

from faust.types import TP

from scoring import Stage, Transition, decay, snapshot
from scoring.api import (
    LeadView,
    RecentTransitions,
    TopLead,
    TopLeads,
    WaitingForSales,
    WaitingLead,
)
from scoring.identity import EMAIL, normal_email
from streams.context import LeadscoreApp
from streams.kafka.topics import partition_for
from streams.processing.funnel import funnel_of, recent_of

STATIC = resources.files("streams.web").joinpath("static")
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
                 ".png": "image/png", ".svg": "image/svg+xml"}  # fmt: skip
MAX_LIMIT = 100

View = Callable[..., Awaitable[Any]]


def register(app: LeadscoreApp) -> None:
    faust_app = app.faust
    token = app.settings.api_token.get_secret_value() if app.settings.api_token else None

    def protected(view: View) -> View:
        @wraps(view)
        async def checked(web: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            if token is not None:
                given = request.headers.get("Authorization", "")
                if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                    return web.json({"error": "unauthorized"}, status=401)
            return await view(web, request, *args, **kwargs)

        return checked

    @faust_app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        """200 once topics exist and this worker has its partitions (and state) assigned."""
        body = {
            "status": "ok" if app.live.ready else "starting",
            "rules_version": app.rules.version,
            "partitions": app.owned_partitions(),
        }
        return web.json(body, status=200 if app.live.ready else 503)

    @faust_app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        await _update_lag(app)
        app.live.metrics.mql_crossings.set(len(app.live.crossings))
        overdue = app.live.waiting.overdue(time.time())
        app.live.metrics.sqls_waiting.labels("true").set(overdue)
        app.live.metrics.sqls_waiting.labels("false").set(len(app.live.waiting) - overdue)
        return web.bytes(app.live.metrics.text(), content_type="text/plain; version=0.0.4")

    @faust_app.page("/leads/top")
    @protected
    async def top_leads(web: Any, request: Any) -> Any:
        stage = request.query.get("stage", Stage.MQL)
        if stage not in set(Stage):
            return web.json({"error": f"unknown stage {stage!r}"}, status=400)
        limit = _limit(request, 10)
        leads = _local_top(app, stage, limit)
        if request.query.get("local") == "1":  # a peer asking for this worker's share
            return web.json({"leads_raw": leads})
        for answer in await _peers(app, request):
            leads.extend(answer["leads_raw"])
        leads.sort(key=lambda lead: -lead["rank"])
        now = time.time()
        top = TopLeads(stage=stage, leads=[_shown(app, lead, now) for lead in leads[:limit]])
        return web.json(top.model_dump(mode="json"))

    @faust_app.page("/sales/waiting")
    @protected
    async def waiting_for_sales(web: Any, request: Any) -> Any:
        limit = _limit(request, 20)
        now = time.time()
        leads = [lead._asdict() for lead in app.live.waiting.most_urgent(limit)]
        waiting, overdue = len(app.live.waiting), app.live.waiting.overdue(now)
        if request.query.get("local") == "1":  # a peer asking for this worker's share
            return web.json({"leads_raw": leads, "waiting": waiting, "overdue": overdue})
        for answer in await _peers(app, request):
            leads.extend(answer["leads_raw"])
            waiting += answer["waiting"]
            overdue += answer["overdue"]
        leads = sorted(leads, key=lambda lead: lead["due_at"])[:limit]
        sales = app.rules.sales
        hours = sales.business_hours if sales is not None else None
        view = WaitingForSales(
            as_of=datetime.fromtimestamp(now, UTC),
            sla_hours=sales.sla_hours if sales is not None else None,
            business_hours=hours.summary() if hours is not None else None,
            waiting=waiting,
            overdue=overdue,
            leads=[_waiting(app, lead, now) for lead in leads],
        )
        return web.json(view.model_dump(mode="json"))

    @faust_app.page("/leads/{lead_id}")
    @protected
    async def lead(web: Any, request: Any, lead_id: str) -> Any:
        partition = partition_for(lead_id.encode(), app.settings.partitions)
        if (routed := await _route(app, web, request, app.leads, partition)) is not None:
            return routed
        state = app.store.get(lead_id.encode(), partition)
        if state is None:
            holder = app.store.table_get(app.identities, b"anon:" + lead_id.encode(), partition)
            if holder is not None:  # an anonymous id merged into another lead: that lead
                survivor = json.loads(holder)["lead_id"]
                location = {"Location": f"/leads/{quote(survivor, safe='')}"}
                return web.json({"merged_into": survivor}, status=307, headers=location)
            if (email := normal_email(lead_id)) is not None:  # the lead holding the email
                location = {"Location": f"/identities/email/{quote(email, safe='@')}"}
                return web.json({"email": email}, status=307, headers=location)
            return web.json({"error": "lead not found", "lead_id": lead_id}, status=404)
        now = snapshot(state, app.rules, time.time())
        recent = app.store.table_get(app.recent, lead_id.encode(), partition)
        view = LeadView(
            **dict(now),
            recent_transitions=[Transition.model_validate(t) for t in json.loads(recent or "[]")],
        )
        return web.json(view.model_dump(mode="json"))

    @faust_app.page("/identities/email/{address}")
    @protected
    async def lead_of_email(web: Any, request: Any, address: str) -> Any:
        """The lead an email address belongs to (stitching: the first lead that gave it)."""
        email = normal_email(address)
        if email is None:
            return web.json({"error": "not an email address", "email": address}, status=400)
        partition = partition_for(email.encode(), app.settings.partitions)
        if (routed := await _route(app, web, request, app.identities, partition)) is not None:
            return routed
        held = app.store.table_get(app.identities, EMAIL.encode() + email.encode(), partition)
        if held is None:
            return web.json({"error": "no lead has this email", "email": email}, status=404)
        lead_id = json.loads(held)["lead_id"]
        location = {"Location": f"/leads/{quote(lead_id, safe='')}"}
        return web.json({"lead_id": lead_id}, status=307, headers=location)

    @faust_app.page("/funnel")
    @protected
    async def funnel(web: Any, request: Any) -> Any:
        if (routed := await _route(app, web, request, app.funnel, 0)) is not None:
            return routed
        return web.json(funnel_of(app).view(datetime.now(UTC)).model_dump(mode="json"))

    @faust_app.page("/transitions/recent")
    @protected
    async def recent_transitions(web: Any, request: Any) -> Any:
        if (routed := await _route(app, web, request, app.funnel, 0)) is not None:
            return routed
        latest = recent_of(app).transitions[::-1][: _limit(request, 20)]
        recent = RecentTransitions(transitions=latest)
        return web.json(recent.model_dump(mode="json"))

    @faust_app.page("/")
    async def dashboard(web: Any, request: Any) -> Any:
        return web.html(STATIC.joinpath("index.html").read_text("utf-8"))

    @faust_app.page("/static/{name}")
    async def static(web: Any, request: Any, name: str) -> Any:
        asset = STATIC.joinpath(name)
        suffix = name[name.rfind(".") :] if "." in name else ""
        if "/" in name or suffix not in CONTENT_TYPES or not asset.is_file():
            return web.json({"error": "not found"}, status=404)
        return web.bytes(asset.read_bytes(), content_type=CONTENT_TYPES[suffix])


async def _route(app: LeadscoreApp, web: Any, request: Any, table: Any, partition: int) -> Any:
    """The owner's answer when another worker owns `partition` of `table`; None if this one does.

    Faust's own table routing asks its producer for the partition, which fails for a
    topic the producer has not written yet; the partition is known here.
    """
    changelog = table.changelog_topic.get_topic_name()
    own = str(app.faust.conf.canonical_url).rstrip("/")
    for url, topics in app.faust.router.table_metadata(table.name).items():
        if partition in topics.get(changelog, ()):
            owner = str(url).rstrip("/")
            break
    else:
        return web.json({"error": "no worker owns this data yet"}, status=503)
    if owner == own:
        return None
    async with app.faust.http_client.get(
        f"{owner}{request.url.path_qs}", headers=dict(request.headers)
    ) as answer:
        return web.text(await answer.text(), content_type=answer.content_type, status=answer.status)


def _limit(request: Any, default: int) -> int:
    try:
        return max(1, min(MAX_LIMIT, int(request.query.get("limit", default))))
    except ValueError:
        return default


def _local_top(app: LeadscoreApp, stage: str, limit: int) -> list[dict[str, Any]]:
    return [
        {
            "lead_id": hot.lead_id,
            "stage": hot.stage,
            "fit_score": round(hot.fit_score, 3),
            "engagement": hot.engagement,
            "clock": hot.clock,
            "rank": hot.rank,
        }
        for hot in app.live.hot.top(stage, limit)
    ]


def _shown(app: LeadscoreApp, lead: dict[str, Any], now: float) -> TopLead:
    """A top lead as the API shows it: engagement decayed to now."""
    engagement = decay(float(lead["engagement"]), now - lead["clock"], app.rules)
    return TopLead(
        lead_id=lead["lead_id"],
        stage=lead["stage"],
        fit_score=lead["fit_score"],
        engagement_score=round(engagement, 3),
    )


def _waiting(app: LeadscoreApp, lead: dict[str, Any], now: float) -> WaitingLead:
    """A waiting SQL as the API shows it: its status and engagement as of now."""
    due, escalation = lead["due_at"], lead["escalate_at"]
    status = "on_time" if now < due else "breached"
    if escalation is not None and now >= escalation:
        status = "escalated"

    def at(instant: float) -> datetime:
        return datetime.fromtimestamp(instant, UTC)

    return WaitingLead(
        lead_id=lead["lead_id"],
        status=status,
        qualified_at=at(lead["qualified_at"]),
        due_at=at(due),
        escalate_at=None if escalation is None else at(escalation),
        seconds_left=round(due - now, 3),
        sql_transition_id=lead["sql_transition_id"],
        fit_score=round(lead["fit_score"], 3),
        engagement_score=round(decay(lead["engagement"], now - lead["clock"], app.rules), 3),
    )


async def _peers(app: LeadscoreApp, request: Any) -> list[dict[str, Any]]:
    """Every other worker's answer to this request, for its own partitions (`local=1`)."""
    own = str(app.faust.conf.canonical_url).rstrip("/")
    peers = [str(url).rstrip("/") for url in app.faust.router.table_metadata(app.leads.name)]
    query = dict(request.query) | {"local": "1"}
    answers = []
    for peer in (p for p in peers if p != own):
        async with app.faust.http_client.get(
            f"{peer}{request.url.path}", params=query, headers=dict(request.headers)
        ) as answer:
            if answer.status == 200:
                answers.append(await answer.json())
    return answers


async def _update_lag(app: LeadscoreApp) -> None:
    tps = [
        TP(topic, partition)
        for topic in app.settings.input_topics
        for partition in app.owned_partitions()
    ]
    if not tps:
        return
    ends = await app.faust.consumer.highwaters(*tps)
    for tp in tps:
        lag = max(0, (ends.get(tp) or 0) - app.next_offset(tp))
        app.live.metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)

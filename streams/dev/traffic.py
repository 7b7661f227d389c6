"""Synthetic Segment-spec traffic for the offline benchmark, the live demo and tests.

`generate` streams an exact number of messages over a population of leads in event-time
order, the same for the same seed; `live` is an endless demo stream stamped with the wall
clock. About 10% of leads are buyers (pricing, demo request, then sales feedback); most
are tire-kickers. Domains are made up (`.example`, RFC 2606) except the free-mail ones
that the example rules disqualify.

Messages are shaped like what the SDKs send. Web calls (pages, identify, group, signups,
forms, product events) come from the visitor's browser: analytics.js (`ajs-next-` message
ids) or, for RUDDERSTACK_SHARE of the browsers, RudderStack's JavaScript SDK (uuid message
ids, identify traits only in `context.traits`); each carries a uuid `anonymousId`, and the
`userId` once the lead is known, `context.page`, `context.userAgent` and `context.library`.
Email and CRM events come from a server (analytics-python, `userId` only). Every message
has `originalTimestamp`, `sentAt` and `receivedAt` beside `timestamp`, the event time, which
is what Segment computes from the other three: receivedAt - (sentAt - originalTimestamp).
UNTIMED_SHARE of the RudderStack identifies come without `timestamp`.

STITCHED_SHARE of the leads are first seen anonymous: they browse (pricing and demo pages
among others) under their anonymousId only, sign up on a popup (`Signed Up`, still
anonymous), and then identify with their userId and that anonymousId. The other leads start
with an identify. The rest of the visitors never identify (ANONYMOUS_SHARE of the messages).

    python -m streams.dev.traffic --messages 1000000 --leads 50000 --out events.jsonl
"""

from __future__ import annotations

import argparse
import copy
import heapq
import itertools
import json
import math
import os
import random
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

Message = dict[str, Any]

DEFAULT_START = datetime(2026, 9, 1, tzinfo=UTC)  # fixed, so a seed always gives the same file
SITE = "https://www.example.com"
BUYER_SHARE = 0.10
ANONYMOUS_SHARE = 0.05  # of all messages: page views of visitors who never identify
DUPLICATE_SHARE = 0.01  # at-least-once upstreams resend a message now and then
SESSION_SHARE = 0.3  # how often the next interaction follows within minutes
STITCHED_SHARE = 0.3  # of leads: anonymous visits and a popup signup before the identify
RUDDERSTACK_SHARE = 0.05  # of browsers: RudderStack's JavaScript SDK instead of analytics.js
# Of RudderStack identifies: sent without `timestamp`, so that the event time is Segment's
# rule over originalTimestamp, sentAt and receivedAt. The draw is made whatever the share:
# changing it removes or restores timestamps and changes nothing else in the traffic.
UNTIMED_SHARE = 0.25

KINDS = ("browser", "buyer", "competitor")
INDUSTRIES = (  # name, share of companies (%), last words of company names
    ("Software", 18, ("Labs", "Systems")),
    ("SaaS", 14, ("Cloud", "HQ")),
    ("Financial Services", 12, ("Capital", "Bank")),
    ("E-commerce", 10, ("Shop", "Commerce")),
    ("Education", 9, ("Learning", "Academy")),
    ("Retail", 10, ("Stores", "Outfitters")),
    ("Manufacturing", 11, ("Industries", "Motors")),
    ("Healthcare", 10, ("Health", "Medical")),
    ("Logistics", 4, ("Logistics", "Freight")),
    ("Media", 2, ("Media", "Studios")),
)
NAME_HEADS = ("Blue", "North", "Bright", "Iron", "Silver", "Nova", "Summit", "Cedar", "Atlas")
NAME_ROOTS = ("field", "stone", "bridge", "wave", "point", "gate", "peak", "ridge", "works")
FIRST_NAMES = ("Ana", "Ben", "Chen", "Dana", "Elif", "Farid", "Grace", "Hiro", "Ines", "Jonas")
LAST_NAMES = ("Silva", "Okafor", "Nguyen", "Schmidt", "Haddad", "Tanaka", "Garcia", "Murphy")
TITLES = (  # by seniority, lowest first: a promotion moves a lead one level up
    ("Marketing Intern", "Engineering Intern", "Student", "Junior Developer"),
    ("Software Engineer", "Data Analyst", "DevOps Engineer", "Marketing Specialist"),
    ("Engineering Manager", "Marketing Manager", "Product Manager", "IT Manager"),
    ("CEO", "Founder", "VP Engineering", "Head of Growth", "Director of IT", "Chief Data Officer"),
)
SENIORITY = {"browser": (10, 47, 25, 18), "buyer": (0, 5, 25, 70), "competitor": (0, 40, 40, 20)}
BLOG_POSTS = ("what-is-lead-scoring", "mql-vs-sql", "bant-framework-guide", "intent-data-101")
DOCS_PAGES = ("", "/getting-started", "/api", "/integrations/salesforce", "/security")
EMAILS = (  # campaign id, campaign name, subject
    ("cmp-101", "2026-q4-launch", "Meet the new scoring studio"),
    ("cmp-102", "weekly-digest", "This week: MQL handoffs that work"),
    ("cmp-103", "webinar-invite", "Live: scoring leads in real time"),
)
AD_CAMPAIGNS = (  # utm name, source, medium, the referrer the browser reports
    ("brand-search", "google", "cpc", "https://www.google.com/"),
    ("retargeting-pricing", "linkedin", "paid-social", "https://www.linkedin.com/"),
    ("weekly-digest", "newsletter", "email", ""),
)
REFERRERS = ("https://www.google.com/", "https://www.bing.com/", "https://www.linkedin.com/", "")
SESSION_MS = 30 * 60_000  # a page within 30 minutes of the last one was reached by a link
FORMS = ("Whitepaper: The MQL Handbook", "E-book: Intent Signals", "Case study: Bluefield Bank")
SIGNUP_FORMS = ("newsletter-footer", "exit-intent-popup", "blog-subscribe")
REJECT_REASONS = ("No budget this year", "Not a priority", "Too small", "Chose a competitor")
RECYCLE_REASONS = ("Timeline pushed to next fiscal year", "Went quiet after the demo")
# What a lead does next: a page path or a track event, weighted by the kind of lead.
# Browsers mostly open mail and read the blog; competitors study pricing, docs and the product.
MIX: tuple[tuple[str, float, float, float], ...] = (  # action, browser, buyer, competitor
    ("Email Opened", 40, 25, 2),
    ("Email Link Clicked", 6, 12, 0),
    ("Unsubscribed", 0.7, 0, 0),
    ("Email Bounced", 0.5, 0, 0),
    ("Email Marked as Spam", 0.2, 0, 0),
    ("/", 8, 5, 10),
    ("/blog/", 20, 10, 10),
    ("/docs", 6, 14, 30),
    ("/pricing", 3, 12, 30),
    ("/demo", 0, 4, 0),
    ("/careers", 2, 0, 0),
    ("Signed Up", 3, 1, 0),
    ("Form Submitted", 2, 6, 0),
    ("Signed In", 3, 9, 18),
    ("Trial Started", 0.3, 2, 0),  # with an Account Created just before it, once per lead
)
CUMULATIVE = {
    kind: ([row[0] for row in MIX], list(itertools.accumulate(row[1:][column] for row in MIX)))
    for column, kind in enumerate(KINDS)
}
MAIL_EVENTS = frozenset(
    ("Email Opened", "Email Link Clicked", "Unsubscribed", "Email Bounced", "Email Marked as Spam")
)
UNMAILABLE = frozenset(("Unsubscribed", "Email Bounced", "Email Marked as Spam"))
PRELUDE_PATHS = {  # where a visitor goes before signing up
    "browser": ("/", "/blog/", "/blog/", "/pricing", "/demo"),
    "buyer": ("/pricing", "/pricing", "/demo", "/", "/docs"),
    "competitor": ("/pricing", "/docs", "/docs"),
}
ANONYMOUS_PATHS = ("/", "/", "/blog/", "/blog/", "/pricing", "/careers")

USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
)
LOCALES = ("en-US", "en-US", "en-GB", "de-DE", "fr-FR", "es-ES")


@dataclass(frozen=True, slots=True)
class Sdk:
    """The library that sends a message, and how its messages differ."""

    name: str
    version: str
    ajs_ids: bool = False  # messageId "ajs-next-" + 32 hex digits; else a uuid
    rudder: bool = False  # channel "web", integrations {"All": true}, traits in context.traits


ANALYTICS_JS = Sdk("analytics.js", "next-1.76.0", ajs_ids=True)
RUDDERSTACK_JS = Sdk("RudderLabs JavaScript SDK", "3.11.2", rudder=True)
ANALYTICS_PYTHON = Sdk("analytics-python", "2.3.3")
# Where a message comes from: the browser before the lead is known, after, or a server.
ANONYMOUS, WEB, SERVER = "anonymous", "web", "server"
Step = tuple[Message, str]  # a message body and where it comes from


@dataclass(frozen=True, slots=True)
class Company:
    group_id: str
    domain: str
    traits: dict[str, Any]  # group traits: name, employees, industry, website


RIVAL_TRAITS = {"name": "Rival Inc", "employees": 850, "industry": "Software"}
RIVAL = Company("grp-rival", "rival.example", RIVAL_TRAITS | {"website": "https://rival.example"})


@dataclass(slots=True)
class Browser:
    """A visitor's browser: its cookie (the anonymousId), its SDK, and the page it is on."""

    anonymous_id: str
    sdk: Sdk
    user_agent: str
    locale: str
    page: dict[str, str]  # context.page of its next call: path, referrer, search, title, url
    campaign: dict[str, str] | None = None  # context.campaign, on the page a tagged link opened
    last_ms: int = -(10**15)  # event time of its last page view


@dataclass(slots=True)
class Lead:
    lead_id: str
    kind: str  # "buyer", "browser" or "competitor"
    company: Company
    traits: dict[str, str]  # identify traits: email, name, firstName, lastName, title
    seniority: int
    browser: Browser
    identified: bool = False  # its identify has been sent: its web calls carry its userId
    mailable: bool = True  # false after an unsubscribe, a bounce or a spam complaint
    promoted: bool = False
    trial: bool = False  # has an account (and a trial): it signs in from then on


@dataclass(slots=True)
class Journey:
    """What is left to send of one lead's (or anonymous visitor's) messages."""

    browser: Browser
    lead: Lead | None
    remaining: int
    end_ms: int  # every message of the journey is due by then
    prelude: int = 0  # anonymous page views left before the popup signup
    queue: list[Step] = field(default_factory=list)  # sent next, moments apart
    milestones: list[Step] = field(default_factory=list)  # sent last, in order
    sent: int = 0
    intro: int = 2  # the messages up to the group call: never resent


def _uuid4(bits: int) -> str:
    """A version 4 uuid (RFC 9562) from 128 random bits, as uuid.UUID would write it."""
    bits = (bits & ~(0xF000 << 64 | 0xC000 << 48)) | 0x4000 << 64 | 0x8000 << 48
    digits = f"{bits:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


@lru_cache(maxsize=256)
def _second(seconds: int) -> str:
    """'2026-09-01T09:00:00.' for epoch seconds: the four stamps of a message share most."""
    days, seconds = divmod(seconds, 86_400)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{_day(days)}{hour:02d}:{minute:02d}:{second:02d}."


@lru_cache(maxsize=64)
def _day(days: int) -> str:
    return (datetime(1970, 1, 1) + timedelta(days=days)).strftime("%Y-%m-%dT")


def _iso(ms: int) -> str:
    """Epoch milliseconds as the SDKs write them: 2026-09-01T09:00:00.123Z."""
    seconds, milli = divmod(ms, 1000)
    return f"{_second(seconds)}{milli:03d}Z"


def _companies(rng: random.Random, count: int) -> list[Company]:
    companies, taken = [], set()
    for number in range(count):
        industry, _, tails = rng.choices(INDUSTRIES, [row[1] for row in INDUSTRIES])[0]
        name = f"{rng.choice(NAME_HEADS)}{rng.choice(NAME_ROOTS)} {rng.choice(tails)}"
        name += f" {number}" if name in taken else ""
        taken.add(name)
        size = rng.lognormvariate(math.log(60), 1.6)  # median 60, a long tail of enterprises
        domain = name.lower().replace(" ", "-") + ".example"
        traits: dict[str, Any] = {"name": name, "employees": int(min(20_000, max(5, size)))}
        traits |= {"industry": industry, "website": f"https://{domain}"}
        companies.append(Company(f"grp-{number:06d}", domain, traits))
    return companies


def _page_context(path: str, search: str, referrer: str) -> dict[str, str]:
    name = path.split("/")[1].capitalize() or "Home"
    title = f"{name} | Example" if name != "Home" else "Example: real-time lead scoring"
    return {"path": path, "referrer": referrer, "search": search, "title": title,
            "url": SITE + path + search}  # fmt: skip


def _browser(rng: random.Random) -> Browser:
    rudder = rng.random() < RUDDERSTACK_SHARE
    return Browser(
        _uuid4(rng.getrandbits(128)),
        RUDDERSTACK_JS if rudder else ANALYTICS_JS,
        rng.choice(USER_AGENTS),
        rng.choice(LOCALES),
        _page_context("/", "", rng.choice(REFERRERS)),  # where it landed first
    )


def _new_lead(
    rng: random.Random, number: int, companies: list[Company], kind: str, taken: set[str]
) -> Lead:
    """A new lead; its email is none of `taken` (two people do not share one), and joins it."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    company = companies[int(len(companies) * rng.random() ** 2)]  # some companies send many
    for _ in range(4):  # buyers mostly work at companies of 50 or more
        if kind != "buyer" or company.traits["employees"] >= 50:
            break
        company = rng.choice(companies)
    local = rng.choice((f"{first}.{last}", f"{first[0]}{last}", first))
    email = f"{local}@{company.domain}"
    if kind == "competitor":
        company, email = RIVAL, f"{local}@{RIVAL.domain}"
    elif kind == "browser" and rng.random() < 0.055:
        email = f"{first}.{last}{rng.randrange(10, 99)}@{rng.choice(('gmail.com', 'yahoo.com'))}"
    email = email.lower()
    if email in taken:
        local, _, domain = email.partition("@")
        email = f"{local}{number}@{domain}"
    taken.add(email)
    seniority = rng.choices(range(len(TITLES)), SENIORITY[kind])[0]
    traits = {
        "email": email,
        "name": f"{first} {last}",
        "firstName": first,
        "lastName": last,
        "title": rng.choice(TITLES[seniority]),
    }
    return Lead(f"lead-{number:06d}", kind, company, traits, seniority, _browser(rng))


def _page(rng: random.Random, path: str) -> Message:
    """A page call; its referrer is filled in when it is sent (it depends on the last page)."""
    if path in ("/blog/", "/docs"):
        path += rng.choice(BLOG_POSTS if path == "/blog/" else DOCS_PAGES)
    message: Message = {"type": "page", "name": path.split("/")[1].capitalize() or "Home"}
    if rng.random() < 0.25:  # arrived from a tagged link
        name, source, medium, referrer = rng.choice(AD_CAMPAIGNS)
        search = f"?utm_source={source}&utm_medium={medium}&utm_campaign={name}"
        message["properties"] = _page_context(path, search, referrer)
        message["context"] = {"campaign": {"name": name, "source": source, "medium": medium}}
    else:
        message["properties"] = _page_context(path, "", "")
    return message


def _track(event: str, properties: dict[str, Any]) -> Message:
    return {"type": "track", "event": event, "properties": properties}


def _identify(lead: Lead) -> Message:
    """The signup's identify: who the lead is, and the company it gave on the form."""
    company = {"name": lead.company.traits["name"]}
    return {"type": "identify", "traits": dict(lead.traits) | {"company": company}}


def _group(lead: Lead) -> Message:
    return {"type": "group", "groupId": lead.company.group_id, "traits": dict(lead.company.traits)}


def _properties(rng: random.Random, event: str, lead: Lead) -> dict[str, Any]:
    if event in MAIL_EVENTS:
        campaign_id, campaign_name, subject = rng.choice(EMAILS)
        properties = {
            "email_id": f"em-{rng.randrange(1_000_000):06d}",
            "email_subject": subject,
            "campaign_id": campaign_id,
            "campaign_name": campaign_name,
        }
        if event == "Email Link Clicked":
            properties["link_url"] = f"{SITE}/blog/{rng.choice(BLOG_POSTS)}?utm_medium=email"
        return properties
    if event == "Form Submitted":
        return {"form_id": "content-download", "asset": rng.choice(FORMS)}
    if event == "Trial Started":
        return {"trial_plan_name": rng.choice(("Team", "Business")), "trial_days": 14}
    if event == "Account Created":
        return {"account_name": lead.company.traits["name"]}
    if event == "Signed In":
        return {"username": lead.traits["email"]}
    return {"type": "organic", "form_id": rng.choice(SIGNUP_FORMS)}  # Signed Up


def _account(rng: random.Random, lead: Lead) -> list[Step]:
    """A trial: the lead's workspace, then the trial in it (Segment's B2B SaaS spec)."""
    lead.trial = True
    created = _track("Account Created", _properties(rng, "Account Created", lead))
    created["context"] = {"groupId": lead.company.group_id}
    return [(created, WEB), (_track("Trial Started", _properties(rng, "Trial Started", lead)), WEB)]


def _interaction(rng: random.Random, journey: Journey, lead: Lead) -> Step:
    """The next everyday interaction of a lead: opens, clicks, visits, signups, logins."""
    if not lead.promoted and rng.random() < 0.004:
        lead.promoted, lead.seniority = True, min(lead.seniority + 1, len(TITLES) - 1)
        lead.traits["title"] = rng.choice(TITLES[lead.seniority])
        return {"type": "identify", "traits": {"title": lead.traits["title"]}}, WEB
    actions, cumulative = CUMULATIVE[lead.kind]
    action = rng.choices(actions, cum_weights=cumulative)[0]
    if action in MAIL_EVENTS and not lead.mailable:
        action = "/blog/"  # mail no longer reaches them, but they may still read the blog
    if action.startswith("/"):
        return _page(rng, action), WEB
    if action in MAIL_EVENTS:
        lead.mailable = lead.mailable and action not in UNMAILABLE
        return _track(action, _properties(rng, action, lead)), SERVER
    if action == "Trial Started" and not lead.trial:
        created, started = _account(rng, lead)
        if journey.remaining - 1 <= len(journey.milestones):
            return started  # no room for both: the trial alone
        journey.queue.append(started)
        return created
    if action == "Trial Started":
        action = "Signed In"  # one trial per lead; later it just comes back
    return _track(action, _properties(rng, action, lead)), WEB


def _buyer_milestones(rng: random.Random, lead: Lead, outcome: str, extras: bool) -> list[Step]:
    """A buyer's path to sales: high-intent visits, a demo request, then CRM feedback.

    outcome: "accepted", "recycled" (accepted, later handed back), "rejected" or "pending".
    """
    steps = [
        (_page(rng, "/pricing"), WEB),
        (_page(rng, "/demo"), WEB),
        (_track("Form Submitted", _properties(rng, "Form Submitted", lead)), WEB),
        (_track("Demo Requested", {"form_id": "demo-request", "team_size": "11-50"}), WEB),
    ]
    if extras and rng.random() < 0.5:
        if rng.random() < 0.5 and not lead.trial:
            steps[2:2] = _account(rng, lead)
        else:
            steps.insert(2, (_track("Signed In", _properties(rng, "Signed In", lead)), WEB))
    calls = [{"need": True, "budget": rng.random() < 0.6}]  # BANT criteria learnt per call
    if outcome == "rejected":
        calls.append({"budget": False, "timeline": False})
    elif outcome != "pending":
        calls.append({"authority": True, "timeline": True})
    steps += [
        (_track("Qualification Updated", {"framework": "BANT", "criteria": criteria}), SERVER)
        for criteria in calls
    ]
    if outcome == "rejected":
        steps.append((_track("Lead Rejected", {"reason": rng.choice(REJECT_REASONS)}), SERVER))
    elif outcome != "pending":
        owner = f"rep-{rng.randrange(1, 13):02d}"
        steps.append((_track("Lead Accepted", {"owner": owner}), SERVER))
    if outcome == "recycled":
        steps.append((_track("Lead Recycled", {"reason": rng.choice(RECYCLE_REASONS)}), SERVER))
    return steps


def _journey(lead: Lead, count: int, end_ms: int, milestones: list[Step], visits: int) -> Journey:
    """A lead's journey: it starts with an identify, or with `visits` anonymous page views
    and a popup signup before that identify."""
    journey = Journey(lead.browser, lead, count, end_ms, milestones=milestones)
    if visits:
        journey.prelude, journey.intro = visits, visits + 3
    else:
        journey.queue = [(_identify(lead), WEB), (_group(lead), WEB)]
    return journey


def _lead_journey(
    rng: random.Random, lead: Lead, count: int, end_ms: int, milestones: list[Step]
) -> Journey:
    """STITCHED_SHARE of the leads, those with room for it, look around before signing up."""
    stitched, visits = rng.random() < STITCHED_SHARE, rng.randint(1, 4)
    visits = max(0, min(visits, count - 3 - len(milestones))) if stitched else 0
    return _journey(lead, count, end_ms, milestones, visits)


def _next_step(rng: random.Random, journey: Journey) -> Step:
    lead = journey.lead
    if lead is None:
        return _page(rng, rng.choice(ANONYMOUS_PATHS)), ANONYMOUS
    if journey.queue:
        return journey.queue.pop(0)
    if not lead.identified:
        if journey.prelude:
            journey.prelude -= 1
            return _page(rng, rng.choice(PRELUDE_PATHS[lead.kind])), ANONYMOUS
        # The popup signup, still anonymous; the identify that names the lead, with the
        # anonymousId it had so far, and the company follow at once.
        journey.queue = [(_identify(lead), WEB), (_group(lead), WEB)]
        properties = {"type": "organic", "form_id": "exit-intent-popup"}
        return _track("Signed Up", properties | {"email": lead.traits["email"]}), ANONYMOUS
    if journey.remaining <= len(journey.milestones):
        return journey.milestones.pop(0)
    return _interaction(rng, journey, lead)


def _message(rng: random.Random, journey: Journey, step: Step, at_ms: int) -> Message:
    """The step as its SDK sends it, with event time at_ms (epoch milliseconds)."""
    body, source = step
    browser, lead = journey.browser, journey.lead
    user_id = lead.lead_id if lead is not None else ""
    sdk = ANALYTICS_PYTHON if source == SERVER else browser.sdk
    delays = rng.getrandbits(20)
    flush_ms, latency_ms = 5 + (delays & 0x1FF), 10 + (delays >> 9) % 240
    id_bits = rng.getrandbits(128)
    kind = body["type"]
    untimed = kind == "identify" and rng.random() < UNTIMED_SHARE and sdk.rudder
    message: Message = {
        "type": kind,
        "messageId": f"ajs-next-{id_bits:032x}" if sdk.ajs_ids else _uuid4(id_bits),
    }
    if not untimed:
        message["timestamp"] = _iso(at_ms)
    if source != ANONYMOUS:
        message["userId"] = user_id
    if source != SERVER:
        message["anonymousId"] = browser.anonymous_id
    message.update(body)
    context: dict[str, Any] = message.pop("context", {})
    context["library"] = {"name": sdk.name, "version": sdk.version}
    if source != SERVER:
        if kind == "page":
            page = message["properties"]
            if page["search"]:
                browser.campaign = context["campaign"]
            else:
                browser.campaign = None
                if at_ms - browser.last_ms < SESSION_MS:
                    page["referrer"] = browser.page["url"]
                else:
                    page["referrer"] = rng.choice(REFERRERS)
            browser.page, browser.last_ms = page, at_ms
        context["locale"] = browser.locale
        context["page"] = dict(browser.page)
        context["userAgent"] = browser.user_agent
        if browser.campaign is not None:
            context["campaign"] = dict(browser.campaign)
        if sdk.rudder:  # the SDK keeps the user's traits and sends them with every call
            message["channel"] = "web"
            traits = message.pop("traits") if kind == "identify" else {}
            if lead is not None and source == WEB:
                context["traits"] = dict(lead.traits) | traits
    if kind == "page":
        message["properties"] = dict(message["properties"])
    if kind == "identify" and lead is not None:
        lead.identified = True
    message["context"] = context
    message["integrations"] = {"All": True} if sdk.rudder else {}
    # The device's clock is behind by the network latency: Segment's rule gives at_ms back.
    original_ms = at_ms - latency_ms
    message["originalTimestamp"] = _iso(original_ms)
    message["sentAt"] = _iso(original_ms + flush_ms)
    message["receivedAt"] = _iso(at_ms + flush_ms)
    return message


def _send(rng: random.Random, journey: Journey, at_ms: int) -> Iterator[Message]:
    """The journey's next message, now and then followed by an exact resend of it."""
    message = _message(rng, journey, _next_step(rng, journey), at_ms)
    journey.sent, journey.remaining = journey.sent + 1, journey.remaining - 1
    yield message
    # Resends never cut a milestone or what is queued, and never repeat the signup.
    spare = journey.remaining > len(journey.milestones) + len(journey.queue)
    if spare and journey.sent > journey.intro and rng.random() < DUPLICATE_SHARE:
        journey.remaining -= 1
        yield copy.deepcopy(message)


def _next_ms(rng: random.Random, journey: Journey, now_ms: int) -> int:
    room = max(0, journey.end_ms - now_ms)
    if journey.queue:  # what one action sends at once: the identify and group of a signup
        return now_ms + min(room, rng.randint(50, 1_500))
    if rng.random() < SESSION_SHARE:
        return now_ms + min(room, int(rng.expovariate(1 / 90_000)))
    # The earliest of `remaining` uniform times in what is left of the window.
    return now_ms + int(room * (1 - rng.random() ** (1 / journey.remaining)))


def _split(total: int, weights: list[float], floor: int) -> list[int]:
    """Split total into integer parts of at least floor, proportional to weights, exactly."""
    floor = min(floor, total // len(weights))
    scale = (total - floor * len(weights)) / sum(weights)
    shares = [weight * scale for weight in weights]
    counts = [floor + int(share) for share in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: int(shares[i]) - shares[i])
    for index in by_remainder[: total - sum(counts)]:
        counts[index] += 1
    return counts


def _anonymous(rng: random.Random, count: int, end_ms: int) -> Journey:
    return Journey(_browser(rng), None, count, end_ms)


def _epoch_us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def generate(
    messages: int,
    leads: int,
    *,
    seed: int = 0,
    start: datetime | None = None,
    span_days: float = 60.0,
) -> Iterator[Message]:
    """Yield exactly `messages` messages from `leads` leads and some anonymous visitors.

    Timestamps (event times) never decrease and lie within `span_days` after `start`
    (default DEFAULT_START; a naive start is taken as UTC), in whole milliseconds. The
    same arguments give the same messages.
    """
    if messages < 0 or leads < 1 or span_days <= 0:
        raise ValueError("need messages >= 0, leads >= 1 and span_days > 0")
    rng = random.Random(seed)
    origin = start or DEFAULT_START
    origin = origin if origin.tzinfo else origin.replace(tzinfo=UTC)
    origin_us = _epoch_us(origin)
    base_ms = -(-origin_us // 1000)  # the first whole millisecond at or after start
    span_ms = (origin_us + int(span_days * 86_400_000_000)) // 1000 - base_ms
    companies = _companies(rng, max(1, leads // 3))
    buyers = set(rng.sample(range(leads), max(1, round(leads * BUYER_SHARE))))
    anonymous = min(round(messages * ANONYMOUS_SHARE), max(0, messages - 2 * leads))
    weights = [rng.lognormvariate(0, 1.1) * (3 if i in buyers else 1) for i in range(leads)]
    journeys: dict[int, Journey] = {}
    due: list[tuple[int, int]] = []  # (time of a journey's next message, journey index)
    emails: set[str] = set()
    for number, count in enumerate(_split(messages - anonymous, weights, 2)):
        kind = "buyer" if number in buyers else "competitor" if rng.random() < 0.011 else "browser"
        lead = _new_lead(rng, number, companies, kind, emails)
        first_ms = int(rng.random() * span_ms * 0.9)
        days = rng.uniform(5, 30) if kind == "buyer" else span_days * rng.uniform(0.2, 1.0)
        end_ms = min(span_ms, first_ms + int(days * 86_400_000))
        milestones: list[Step] = []
        if kind == "buyer":
            outcome = rng.choices(("accepted", "recycled", "rejected", "pending"), (55, 15, 15, 15))
            milestones = _buyer_milestones(rng, lead, outcome[0], extras=True)
        journeys[number] = _lead_journey(rng, lead, count, end_ms, milestones)
        due.append((first_ms, number))
    for count in _split(anonymous, [rng.random() + 0.2 for _ in range(anonymous // 3 + 1)], 1):
        first_ms = int(rng.random() * span_ms)
        due.append((first_ms, len(journeys)))
        journeys[len(journeys)] = _anonymous(rng, count, first_ms + 1_800_000)
    due = [(first_ms, index) for first_ms, index in due if journeys[index].remaining]
    heapq.heapify(due)
    while due:
        now_ms, index = heapq.heappop(due)
        journey = journeys[index]
        yield from _send(rng, journey, base_ms + now_ms)
        if journey.remaining:
            heapq.heappush(due, (min(span_ms, _next_ms(rng, journey, now_ms)), index))
        else:
            del journeys[index]  # done: free its state


def _live_journey(
    rng: random.Random,
    numbers: Iterator[int],
    companies: list[Company],
    recent: deque[Lead],
    now_ms: int,
) -> Journey:
    """A short journey for the demo, in seconds rather than days."""
    roll = rng.random()
    if roll < 0.15:
        return _anonymous(rng, rng.randint(1, 4), now_ms + 30_000)
    if recent and roll < 0.35:  # a known lead comes back for a few interactions
        lead = rng.choice(recent)
        if not lead.identified:  # still anonymous: it looks around some more
            return Journey(lead.browser, None, rng.randint(1, 3), now_ms + 60_000)
        return Journey(lead.browser, lead, rng.randint(1, 3), now_ms + 60_000, sent=2)
    number = next(numbers)
    buyer = number == 0 or rng.random() < 0.25
    kind = "buyer" if buyer else "competitor" if rng.random() < 0.03 else "browser"
    lead = _new_lead(rng, number, companies, kind, {known.traits["email"] for known in recent})
    recent.append(lead)
    # The first lead signs up at once, so that the demo shows an MQL early.
    stitched, visits = number > 0 and rng.random() < STITCHED_SHARE, rng.randint(1, 3)
    visits = visits if stitched else 0
    intro = visits + 3 if visits else 2
    if not buyer:
        return _journey(lead, intro + rng.randint(1, 5), now_ms + 90_000, [], visits)
    # Compressed: mql within about 15 s, sql within about 25 s (after the visits, if any).
    outcome = "accepted" if number == 0 or rng.random() < 0.8 else "rejected"
    milestones = _buyer_milestones(rng, lead, outcome, extras=False)
    end_ms = now_ms + 25_000 + 4_000 * visits
    return _journey(lead, intro + len(milestones), end_ms, milestones, visits)


def live(*, seed: int = 0, rate: float = 5.0, leads: int = 200) -> Iterator[Message]:
    """Endless demo traffic, each message stamped with the wall clock when it is taken.

    The caller paces it at `rate` messages per second; journeys run on a clock of
    messages / rate, and a new one starts whenever none is due, so many run side by side.
    New leads keep arriving; the latest `leads` of them may come back for more.
    """
    if rate <= 0 or leads < 1:
        raise ValueError("need rate > 0 and leads >= 1")
    rng = random.Random(seed)
    companies = _companies(rng, max(1, leads // 3))
    recent: deque[Lead] = deque(maxlen=leads)
    lead_numbers = itertools.count()
    journeys: dict[int, Journey] = {}
    due: list[tuple[int, int]] = []  # (clock ms of a journey's next message, journey number)
    sent = 0
    for number in itertools.count():
        clock_ms = int(sent * 1000 / rate)
        if not due or due[0][0] > clock_ms:  # spare capacity: someone new shows up
            journeys[number] = _live_journey(rng, lead_numbers, companies, recent, clock_ms)
            heapq.heappush(due, (clock_ms, number))
        _, index = heapq.heappop(due)
        journey = journeys[index]
        now_ms = -(-time.time_ns() // 1_000_000)  # the next whole millisecond: never before now
        for message in _send(rng, journey, now_ms):
            yield message
            sent += 1
        if journey.remaining:
            heapq.heappush(due, (_next_ms(rng, journey, clock_ms), index))
        else:
            del journeys[index]


def _encoder() -> Callable[[Message], bytes]:
    try:
        import orjson
    except ImportError:
        return lambda message: json.dumps(message, separators=(",", ":")).encode()
    return orjson.dumps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m streams.dev.traffic",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--messages", type=int, required=True, help="exact number of messages")
    parser.add_argument("--leads", type=int, required=True, help="number of leads")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--start", type=datetime.fromisoformat, help="earliest event time (ISO)")
    parser.add_argument("--span-days", type=float, default=60.0, help="days of event time")
    parser.add_argument("--out", help="JSONL file to write (default stdout)")
    args = parser.parse_args(argv)
    if args.messages < 0 or args.leads < 1 or args.span_days <= 0:
        parser.error("need --messages >= 0, --leads >= 1 and --span-days > 0")
    encode = _encoder()
    messages = generate(
        args.messages, args.leads, seed=args.seed, start=args.start, span_days=args.span_days
    )
    lines = (encode(message) + b"\n" for message in messages)
    try:
        if args.out is None:
            sys.stdout.buffer.writelines(lines)
            sys.stdout.buffer.flush()
        else:
            with open(args.out, "wb", buffering=1 << 20) as out:
                out.writelines(lines)
    except BrokenPipeError:  # piped into `head`: stop quietly, as the Python docs advise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    main()

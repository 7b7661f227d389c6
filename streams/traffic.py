"""Synthetic Segment-spec traffic for the offline benchmark, the live demo and tests.

`generate` streams an exact number of messages over a population of leads in event-time
order, the same for the same seed; `live` is an endless demo stream stamped with the wall
clock. About 10% of leads are buyers (pricing, demo request, then sales feedback); most
are tire-kickers. Domains are made up (`.example`, RFC 2606) except the free-mail ones
that the example rules disqualify.

    python -m streams.traffic --messages 1000000 --leads 50000 --out events.jsonl
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
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

Message = dict[str, Any]

DEFAULT_START = datetime(2026, 9, 1, tzinfo=UTC)  # fixed, so a seed always gives the same file
SITE = "https://www.example.com"
BUYER_SHARE = 0.10
ANONYMOUS_SHARE = 0.05  # of all messages: page views of visitors who never identify
DUPLICATE_SHARE = 0.01  # at-least-once upstreams resend a message now and then
SESSION_SHARE = 0.3  # how often the next interaction follows within minutes

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
AD_CAMPAIGNS = (  # utm name, source, medium
    ("brand-search", "google", "cpc"),
    ("retargeting-pricing", "linkedin", "paid-social"),
    ("weekly-digest", "newsletter", "email"),
)
FORMS = ("Whitepaper: The MQL Handbook", "E-book: Intent Signals", "Case study: Bluefield Bank")
WEBINARS = (("web-2610", "Scoring leads in real time"), ("web-2611", "From MQL to SQL in a week"))
REJECT_REASONS = ("No budget this year", "Not a priority", "Too small", "Chose a competitor")
RECYCLE_REASONS = ("Timeline pushed to next fiscal year", "Went quiet after the demo")
# What a lead does next: a page path or a track event, weighted by the kind of lead.
# Browsers mostly open mail and read the blog; competitors study pricing and docs.
MIX: tuple[tuple[str, float, float, float], ...] = (  # action, browser, buyer, competitor
    ("Email Opened", 40, 25, 2),
    ("Email Link Clicked", 6, 12, 0),
    ("Unsubscribed", 0.7, 0, 0),
    ("Email Bounced", 0.5, 0, 0),
    ("/", 8, 5, 10),
    ("/blog/", 20, 10, 10),
    ("/docs", 6, 14, 30),
    ("/pricing", 3, 12, 30),
    ("/demo", 0, 4, 0),
    ("/careers", 2, 0, 0),
    ("Newsletter Signup", 1.5, 1, 0),
    ("Popup Signup", 1.5, 0, 0),
    ("Form Submitted", 2, 6, 0),
    ("Webinar Registered", 2, 5, 10),
    ("Webinar Attended", 1, 4, 8),
    ("Trial Started", 0.3, 2, 0),
)
CUMULATIVE = {
    kind: ([row[0] for row in MIX], list(itertools.accumulate(row[1:][column] for row in MIX)))
    for column, kind in enumerate(KINDS)
}


@dataclass(frozen=True, slots=True)
class Company:
    group_id: str
    domain: str
    traits: dict[str, Any]  # group traits: name, employee_count, industry, website


RIVAL_TRAITS = {"name": "Rival Inc", "employee_count": 850, "industry": "Software"}
RIVAL = Company("grp-rival", "rival.example", RIVAL_TRAITS | {"website": "https://rival.example"})


@dataclass(slots=True)
class Lead:
    lead_id: str
    kind: str  # "buyer", "browser" or "competitor"
    company: Company
    traits: dict[str, str]  # identify traits: email, name, firstName, lastName, title
    seniority: int
    mailable: bool = True  # false after an unsubscribe or a bounce: no more email events
    promoted: bool = False


@dataclass(slots=True)
class Journey:
    """What is left to send of one lead's (or anonymous visitor's) messages."""

    sender: tuple[str, str]  # ("userId", lead id) or ("anonymousId", visitor id)
    lead: Lead | None
    remaining: int
    end_ms: int  # every message of the journey is due by then
    milestones: list[Message] = field(default_factory=list)  # sent last, in order
    sent: int = 0


def _companies(rng: random.Random, count: int) -> list[Company]:
    companies, taken = [], set()
    for number in range(count):
        industry, _, tails = rng.choices(INDUSTRIES, [row[1] for row in INDUSTRIES])[0]
        name = f"{rng.choice(NAME_HEADS)}{rng.choice(NAME_ROOTS)} {rng.choice(tails)}"
        name += f" {number}" if name in taken else ""
        taken.add(name)
        size = rng.lognormvariate(math.log(60), 1.6)  # median 60, a long tail of enterprises
        domain = name.lower().replace(" ", "-") + ".example"
        traits: dict[str, Any] = {"name": name, "employee_count": int(min(20_000, max(5, size)))}
        traits |= {"industry": industry, "website": f"https://{domain}"}
        companies.append(Company(f"grp-{number:06d}", domain, traits))
    return companies


def _new_lead(rng: random.Random, number: int, companies: list[Company], kind: str) -> Lead:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    company = companies[int(len(companies) * rng.random() ** 2)]  # some companies send many
    for _ in range(4):  # buyers mostly work at companies of 50 or more
        if kind != "buyer" or company.traits["employee_count"] >= 50:
            break
        company = rng.choice(companies)
    local = rng.choice((f"{first}.{last}", f"{first[0]}{last}", first))
    email = f"{local}@{company.domain}"
    if kind == "competitor":
        company, email = RIVAL, f"{local}@{RIVAL.domain}"
    elif kind == "browser" and rng.random() < 0.055:
        email = f"{first}.{last}{rng.randrange(10, 99)}@{rng.choice(('gmail.com', 'yahoo.com'))}"
    seniority = rng.choices(range(len(TITLES)), SENIORITY[kind])[0]
    traits = {
        "email": email.lower(),
        "name": f"{first} {last}",
        "firstName": first,
        "lastName": last,
        "title": rng.choice(TITLES[seniority]),
    }
    return Lead(f"lead-{number:06d}", kind, company, traits, seniority)


def _page(rng: random.Random, path: str) -> Message:
    if path in ("/blog/", "/docs"):
        path += rng.choice(BLOG_POSTS if path == "/blog/" else DOCS_PAGES)
    message: Message = {
        "type": "page",
        "name": path.split("/")[1].capitalize() or "Home",
        "properties": {"url": SITE + path, "path": path},
    }
    if rng.random() < 0.25:  # arrived from a tagged link
        name, source, medium = rng.choice(AD_CAMPAIGNS)
        message["context"] = {"campaign": {"name": name, "source": source, "medium": medium}}
    return message


def _track(event: str, properties: dict[str, Any]) -> Message:
    return {"type": "track", "event": event, "properties": properties}


def _properties(rng: random.Random, event: str) -> dict[str, Any]:
    if event.startswith("Email") or event == "Unsubscribed":
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
    if event.startswith("Webinar"):
        webinar_id, title = rng.choice(WEBINARS)
        return {"webinar_id": webinar_id, "webinar_name": title}
    if event == "Form Submitted":
        return {"form_id": "content-download", "asset": rng.choice(FORMS)}
    if event == "Trial Started":
        return {"plan": rng.choice(("Team", "Business")), "trial_days": 14}
    return {"list_id": "newsletter" if event == "Newsletter Signup" else "exit-intent-offer"}


def _interaction(rng: random.Random, lead: Lead) -> Message:
    """The next everyday interaction of a lead: opens, clicks, visits, signups."""
    if not lead.promoted and rng.random() < 0.004:
        lead.promoted, lead.seniority = True, min(lead.seniority + 1, len(TITLES) - 1)
        lead.traits["title"] = rng.choice(TITLES[lead.seniority])
        return {"type": "identify", "traits": {"title": lead.traits["title"]}}
    actions, cumulative = CUMULATIVE[lead.kind]
    action = rng.choices(actions, cum_weights=cumulative)[0]
    if action.startswith(("Email", "Unsub")) and not lead.mailable:
        action = "/blog/"  # mail no longer reaches them, but they may still read the blog
    if action.startswith("/"):
        return _page(rng, action)
    lead.mailable = lead.mailable and action not in ("Unsubscribed", "Email Bounced")
    return _track(action, _properties(rng, action))


def _buyer_milestones(rng: random.Random, outcome: str, extras: bool) -> list[Message]:
    """A buyer's path to sales: high-intent visits, a demo request, then CRM feedback.

    outcome: "accepted", "recycled" (accepted, later handed back), "rejected" or "pending".
    """
    steps = [
        _page(rng, "/pricing"),
        _page(rng, "/demo"),
        _track("Form Submitted", _properties(rng, "Form Submitted")),
        _track("Demo Requested", {"form_id": "demo-request", "team_size": "11-50"}),
    ]
    if extras and rng.random() < 0.5:
        event = rng.choice(("Trial Started", "Webinar Attended"))
        steps.insert(2, _track(event, _properties(rng, event)))
    calls = [{"need": True, "budget": rng.random() < 0.6}]  # BANT criteria learnt per call
    if outcome == "rejected":
        calls.append({"budget": False, "timeline": False})
    elif outcome != "pending":
        calls.append({"authority": True, "timeline": True})
    steps += [
        _track("Qualification Updated", {"framework": "BANT", "criteria": criteria})
        for criteria in calls
    ]
    if outcome == "rejected":
        steps.append(_track("Lead Rejected", {"reason": rng.choice(REJECT_REASONS)}))
    elif outcome != "pending":
        steps.append(_track("Lead Accepted", {"owner": f"rep-{rng.randrange(1, 13):02d}"}))
    if outcome == "recycled":
        steps.append(_track("Lead Recycled", {"reason": rng.choice(RECYCLE_REASONS)}))
    return steps


def _next_body(rng: random.Random, journey: Journey) -> Message:
    lead = journey.lead
    if lead is None:
        return _page(rng, rng.choice(("/", "/", "/blog/", "/blog/", "/pricing", "/careers")))
    if journey.sent == 0:
        return {"type": "identify", "traits": dict(lead.traits)}
    if journey.sent == 1:  # the company, from the same signup form
        return {
            "type": "group",
            "groupId": lead.company.group_id,
            "traits": dict(lead.company.traits),
        }
    if journey.remaining <= len(journey.milestones):
        return journey.milestones.pop(0)
    return _interaction(rng, lead)


def _send(rng: random.Random, journey: Journey, timestamp: str) -> Iterator[Message]:
    """The journey's next message, now and then followed by an exact resend of it."""
    message_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    body = _next_body(rng, journey)
    message = {
        "type": body["type"],
        "messageId": message_id,
        "timestamp": timestamp,
        journey.sender[0]: journey.sender[1],
    }
    message.update(body)
    journey.sent, journey.remaining = journey.sent + 1, journey.remaining - 1
    yield message
    spare = journey.remaining > len(journey.milestones)  # resends never cut a milestone
    if spare and journey.sent > 2 and rng.random() < DUPLICATE_SHARE:
        journey.remaining -= 1
        yield copy.deepcopy(message)


def _next_ms(rng: random.Random, journey: Journey, now_ms: int) -> int:
    room = max(0, journey.end_ms - now_ms)
    if journey.sent == 1:  # identify and group come from the same signup
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
    return Journey(("anonymousId", f"anon-{rng.getrandbits(48):012x}"), None, count, end_ms)


def generate(
    messages: int,
    leads: int,
    *,
    seed: int = 0,
    start: datetime | None = None,
    span_days: float = 60.0,
) -> Iterator[Message]:
    """Yield exactly `messages` messages from `leads` leads and some anonymous visitors.

    Timestamps never decrease and lie within `span_days` after `start` (default
    DEFAULT_START; a naive start is taken as UTC). The same arguments give the same messages.
    """
    if messages < 0 or leads < 1 or span_days <= 0:
        raise ValueError("need messages >= 0, leads >= 1 and span_days > 0")
    rng = random.Random(seed)
    origin = start or DEFAULT_START
    origin = origin if origin.tzinfo else origin.replace(tzinfo=UTC)
    span_ms = int(span_days * 86_400_000)
    companies = _companies(rng, max(1, leads // 3))
    buyers = set(rng.sample(range(leads), max(1, round(leads * BUYER_SHARE))))
    anonymous = min(round(messages * ANONYMOUS_SHARE), max(0, messages - 2 * leads))
    weights = [rng.lognormvariate(0, 1.1) * (3 if i in buyers else 1) for i in range(leads)]
    journeys: dict[int, Journey] = {}
    due: list[tuple[int, int]] = []  # (time of a journey's next message, journey index)
    for number, count in enumerate(_split(messages - anonymous, weights, 2)):
        kind = "buyer" if number in buyers else "competitor" if rng.random() < 0.011 else "browser"
        lead = _new_lead(rng, number, companies, kind)
        first_ms = int(rng.random() * span_ms * 0.9)
        days = rng.uniform(5, 30) if kind == "buyer" else span_days * rng.uniform(0.2, 1.0)
        journey = Journey(
            ("userId", lead.lead_id), lead, count, min(span_ms, first_ms + int(days * 86_400_000))
        )
        if kind == "buyer":
            outcome = rng.choices(("accepted", "recycled", "rejected", "pending"), (55, 15, 15, 15))
            journey.milestones = _buyer_milestones(rng, outcome[0], extras=True)
        journeys[number] = journey
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
        timestamp = (origin + timedelta(milliseconds=now_ms)).isoformat("T", "microseconds")
        yield from _send(rng, journey, timestamp)
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
        return Journey(("userId", lead.lead_id), lead, rng.randint(1, 3), now_ms + 60_000, sent=2)
    number = next(numbers)
    buyer = number == 0 or rng.random() < 0.25
    kind = "buyer" if buyer else "competitor" if rng.random() < 0.03 else "browser"
    lead = _new_lead(rng, number, companies, kind)
    recent.append(lead)
    journey = Journey(("userId", lead.lead_id), lead, 2 + rng.randint(1, 5), now_ms + 90_000)
    if buyer:  # compressed: mql within about 15 s, sql within about 25 s
        outcome = "accepted" if number == 0 or rng.random() < 0.8 else "rejected"
        journey.milestones = _buyer_milestones(rng, outcome, extras=False)
        journey.remaining, journey.end_ms = 2 + len(journey.milestones), now_ms + 25_000
    return journey


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
        for message in _send(rng, journey, datetime.now(UTC).isoformat("T", "microseconds")):
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
        prog="python -m streams.traffic",
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

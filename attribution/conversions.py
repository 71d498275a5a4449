"""Conversion services: recording a conversion once, and attributing it to the links that earned it.

Confidence scale (0–100), from the strongest evidence that tied the conversion to its journey:
  97  the conversion names a click id (allumi_cid) of a click in the journey
  93  the conversion carries the visitor cookie of clicks in the journey
  88  an email, Whop user or customer id links it to an identity whose cookie clicked
      Each of those is lowered when, after the journey's last click, a browser none of its
      identifiers reaches clicked the creator's links from one of the journey's networks (the
      person may have gone on there: a phone's in-app browser at home, a computer after a phone):
  65  such a click came from a small network (at most 12 visitors in the window: a home)
  40  ... from an in-app browser (Instagram, Facebook, TikTok, ...) on such a network
 -10  such clicks came only from crowded networks (carrier NAT, offices): off the value above
  ≤48 probabilistic: the same server-side fingerprint (browser headers + network) as one visitor's
      clicks, discounted by how many visitors share that fingerprint, how crowded the network is
      (carrier NAT, offices), how common the device is and how many other people known by an
      email or Whop user id convert from that fingerprint (a household's shared phone), and cut
      to about a third when only the /24 matches, not the address itself (family members and
      neighbours share those)
  ≤35 probabilistic: same network, device and language within a day, discounted the same way
Below 25 a probabilistic match is not used and the conversion stays unattributed; neither is a
match whose cookie belongs to someone with another email or Whop user. bench/journeys.py measures
the scale against its ground truth ("right" = the top link is the person's true last touch). With
the later-click discounts, on seeds 7, 8 and 9: 90+ right 96.1%, 94.3%, 93.1%; 80-89 93.4%,
92.3%, 85.6%; 50-79 78.9%, 67.1%, 90.0%; 25-49 56.8%, 47.3%, 47.7%. Without them 90+ was right
90.6%, 83.7%, 85.6% (the true last touch on a browser no identifier reaches) and 50-79 was empty.
"""

import contextlib
import hashlib
import logging
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from time import monotonic

import redis
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from allumi.accounts.models import Creator
from allumi.core.metrics import conversions_recorded
from allumi.core.queue import enqueue
from allumi.core.redis_client import shared_redis
from attribution.credit import MODELS, link_weights, split_revenue
from attribution.enrich import is_in_app_browser
from attribution.events import conversion_attributed_emit, conversion_created_emit, conversion_refunded_emit
from attribution.identities import identity_observe_fingerprint, identity_resolve
from attribution.models import AttributionSettings, Click, Conversion, Credit, CreditLedger, Identifier, Recompute
from attribution.notifications import conversion_alert_schedule

logger = logging.getLogger(__name__)

CONFIDENCE_CLICK_ID = 97
CONFIDENCE_VISITOR = 93
CONFIDENCE_LINKED_IDENTITY = 88
CONFIDENCE_FINGERPRINT_MAX = 48
CONFIDENCE_NETWORK_MAX = 35
CONFIDENCE_FLOOR = 25
# A deterministic journey whose network saw the creator's links clicked, after the journey's last
# click, by a browser none of its identifiers reaches: the person may have gone on elsewhere.
CONFIDENCE_CONTINUED_IN_APP = 40  # from an in-app browser, on a small network (a home)
CONFIDENCE_CONTINUED_NEARBY = 65  # from another browser on a small network
CONTINUED_CROWDED_DISCOUNT = 10  # only on crowded networks (carrier NAT, offices): off the base
SMALL_NETWORK_VISITORS = 12  # at most this many visitors in the window: a home, not a crowd
LATER_CLICKS_READ = 200  # clicks after a journey read to tell whether it continued elsewhere
# Visitors on a network are first counted among its latest clicks: this many per visitor sought.
NETWORK_SAMPLE_PER_VISITOR = 4
NETWORK_SAMPLE_MIN = 64
SUBNET_ONLY_FACTOR = 0.35
NETWORK_MATCH_WINDOW = timedelta(hours=24)
# Agents rarer than this among a creator's clicks count at this share: lookalikes are never assumed away.
DEVICE_SHARE_FLOOR = 0.0005
DEVICE_SHARES_TTL = 60  # seconds; a population statistic, not evidence about one visitor
DEVICE_SHARES_PAST_TTL = 3600  # for windows that ended before today
DEVICE_SHARES_SAMPLE = 20_000


def attribution_settings_for(creator_id: int) -> AttributionSettings:
    settings_, _ = AttributionSettings.objects.get_or_create(creator_id=creator_id)
    return settings_


# --- recording --------------------------------------------------------------------------------


def conversion_record(
    *,
    creator: Creator,
    event: str,
    source: str,
    external_id: str | None = None,
    email: str = "",
    click_id: str = "",
    visitor_id: str = "",
    whop_user_id: str = "",
    amount: Decimal | None = None,
    currency: str = "",
    occurred_at: datetime | None = None,
    metadata: dict | None = None,
    signals: dict | None = None,
) -> tuple[Conversion, bool]:
    """Store a conversion once per external id; returns (conversion, created).

    The unique constraint decides between concurrent duplicates, not a check before the insert.
    Attribution is enqueued when the transaction commits; a conversion whose enqueue is lost stays
    `pending` and the periodic sweep picks it up.
    """
    signals = signals or {}
    conversion = Conversion(
        creator=creator,
        external_id=external_id or None,
        event=event,
        source=source,
        email=email.strip().lower(),
        click_id=click_id,
        visitor_id=visitor_id,
        whop_user_id=whop_user_id,
        amount=amount,
        currency=(currency or creator.currency or "USD").upper(),
        occurred_at=occurred_at or timezone.now(),
        metadata=metadata or {},
        ip=signals.get("ip"),
        network=signals.get("network", ""),
        user_agent=signals.get("user_agent", ""),
        accept_language=signals.get("accept_language", ""),
        fingerprint=signals.get("fingerprint", ""),
    )
    if external_id:
        try:
            with transaction.atomic():
                conversion.save(force_insert=True)
        except IntegrityError:
            return Conversion.objects.get(creator=creator, external_id=external_id), False
    else:
        conversion.save(force_insert=True)
    conversions_recorded.labels(source=source).inc()
    conversion_created_emit(conversion=conversion)
    conversions_enqueue_attribution([conversion.id])
    conversion_alert_schedule(conversion=conversion)
    return conversion, True


def conversions_enqueue_attribution(conversion_ids: list[int]) -> None:
    from attribution.tasks import attribute_conversion

    def _send():
        for conversion_id in conversion_ids:
            enqueue(attribute_conversion, conversion_id)  # not sent: the pending sweep picks it up

    transaction.on_commit(_send)


# --- journeys ---------------------------------------------------------------------------------


def _deterministic_keys(conversion: Conversion) -> list[tuple[str, str]]:
    keys = []
    if conversion.click_id:
        click = Click.objects.filter(creator_id=conversion.creator_id, public_id=conversion.click_id).values_list("public_id", "visitor_id").first()
        if click is not None:
            public_id, visitor_id = click
            keys.append((Identifier.Kind.CLICK, public_id))
            if visitor_id:
                keys.append((Identifier.Kind.VISITOR, visitor_id))
    if conversion.visitor_id:
        keys.append((Identifier.Kind.VISITOR, conversion.visitor_id))
    if conversion.email:
        keys.append((Identifier.Kind.EMAIL, conversion.email))
    if conversion.whop_user_id:
        keys.append((Identifier.Kind.WHOP_USER, conversion.whop_user_id))
    customer = (conversion.metadata or {}).get("customer_id")
    if isinstance(customer, str) and customer:
        keys.append((Identifier.Kind.EXTERNAL, customer[:255]))
    return keys


def _window_clicks(conversion: Conversion, window_days: int):
    return Click.objects.filter(
        creator_id=conversion.creator_id,
        is_bot=False,
        occurred_at__gte=conversion.occurred_at - timedelta(days=window_days),
        occurred_at__lte=conversion.occurred_at,
    )


def _identity_journey(conversion: Conversion, identity_id: int, window_days: int) -> list[Click]:
    identifiers = list(
        Identifier.objects.filter(identity_id=identity_id, kind__in=[Identifier.Kind.VISITOR, Identifier.Kind.CLICK]).values_list("kind", "value")
    )
    visitors = [value for kind, value in identifiers if kind == Identifier.Kind.VISITOR]
    clicks = [value for kind, value in identifiers if kind == Identifier.Kind.CLICK]
    if not visitors and not clicks:
        return []
    return list(
        _window_clicks(conversion, window_days)
        .filter(Q(visitor_id__in=visitors) | Q(public_id__in=clicks))
        .only("id", "public_id", "link_id", "occurred_at", "visitor_id", "network")
        .order_by("occurred_at", "id")
    )


def _deterministic_confidence(conversion: Conversion, journey: list[Click]) -> tuple[int, str]:
    if conversion.click_id and any(click.public_id == conversion.click_id for click in journey):
        return CONFIDENCE_CLICK_ID, "click_id"
    if conversion.visitor_id and any(click.visitor_id == conversion.visitor_id for click in journey):
        return CONFIDENCE_VISITOR, "visitor_cookie"
    return CONFIDENCE_LINKED_IDENTITY, "linked_identity"


def _continued_elsewhere(conversion: Conversion, journey: list[Click], window_days: int) -> str | None:
    """Whether a browser outside the journey clicked the creator's links from one of the journey's
    networks after its last click: "in_app" (an in-app browser on a small network, where the person's
    own phone is the likely one), "nearby" (another browser there), "crowded" (only on networks
    many visitors share), or None. Its true last touch may then be a click no identifier reaches.
    On the journeys benchmark (seed 8), 90+ conversions without such a click were right 95% of the
    time, with one on a small network 51%, from an in-app browser there 31%, on a crowded one 87%."""
    networks = {click.network for click in journey if click.network}
    if not networks:
        return None
    ours = sorted({click.visitor_id for click in journey})
    # Plain SQL: this runs for nearly every attributed conversion, recomputes included, and building
    # it through the ORM took as long as the database took to answer it.
    sql = _LATER_CLICKS_SQL.format(
        table=Click._meta.db_table, networks=", ".join(["%s"] * len(networks)), ours=", ".join(["%s"] * len(ours))
    )
    after = max(click.occurred_at for click in journey)
    with connection.cursor() as db:
        db.execute(sql, [conversion.creator_id, after, conversion.occurred_at, *sorted(networks), *ours, LATER_CLICKS_READ])
        later = db.fetchall()
    if not later:
        return None
    since = conversion.occurred_at - timedelta(days=window_days)
    small = {
        network
        for network in {network for network, _ in later}
        if _network_visitors_of(conversion.creator_id, network, since, conversion.occurred_at, SMALL_NETWORK_VISITORS + 1) <= SMALL_NETWORK_VISITORS
    }
    if not small:
        return "crowded"
    return "in_app" if any(network in small and is_in_app_browser(agent) for network, agent in later) else "nearby"


def _network_visitors_of(creator_id: int, network: str, since: datetime, until: datetime, enough: int) -> int:
    """How many visitors clicked the creator's links from `network` between `since` and `until`,
    counted up to `enough`. The latest clicks are read first: on a crowded network (carrier NAT, an
    office) a few dozen of them already hold `enough` visitors, where counting distinct visitors
    read every click of the window (tens of thousands, 7 ms on the attribution benchmark)."""
    table = Click._meta.db_table
    sample = max(enough * NETWORK_SAMPLE_PER_VISITOR, NETWORK_SAMPLE_MIN)
    with connection.cursor() as db:
        db.execute(_NETWORK_LATEST_SQL.format(table=table), [creator_id, since, until, network, sample])
        latest = db.fetchall()
        seen = len({visitor_id for (visitor_id,) in latest})
        if seen >= enough or len(latest) < sample:
            return min(seen, enough)
        # A few visitors clicking very often: count them all.
        db.execute(_NETWORK_VISITORS_SQL.format(table=table), [creator_id, since, until, network, enough])
        return db.fetchone()[0]


# Identifiers that name one person: two identities holding different ones are two people.
_PERSONAL = (Identifier.Kind.EMAIL, Identifier.Kind.WHOP_USER)


def _owned_by_someone_else(visitor_id: str, identity_id: int | None, creator_id: int) -> bool:
    """True when the visitor's cookie belongs to an identity with another email or Whop user than
    the converting identity: deterministic evidence keeps those two people apart."""
    owner = Identifier.objects.filter(creator_id=creator_id, kind=Identifier.Kind.VISITOR, value=visitor_id).values_list("identity_id", flat=True).first()
    if owner is None or identity_id is None or owner == identity_id:
        return False
    theirs = set(Identifier.objects.filter(identity_id=owner, kind__in=_PERSONAL).values_list("kind", "value"))
    ours = set(Identifier.objects.filter(identity_id=identity_id, kind__in=_PERSONAL).values_list("kind", "value"))
    return bool(theirs) and bool(ours) and not (theirs & ours)


def _agent_key(user_agent: str) -> str:
    return hashlib.blake2b(user_agent.encode("utf-8", "replace"), digest_size=8).hexdigest()


def _device_shares(creator_id: int, window_days: int, day) -> dict[str, float]:
    """Share of each user agent among the creator's human clicks in the window that ends with
    `day`, for agents at or above DEVICE_SHARE_FLOOR. One scan per creator and day, cached briefly:
    a recompute of a creator's history reads it thousands of times."""
    key = f"attribution:device-shares:v1:{creator_id}:{window_days}:{day.isoformat()}"
    shares = cache.get(key)
    if shares is None:
        end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)
        # The most recent clicks of the window are sample enough: shares to a tenth of a percent.
        latest = (
            Click.objects.filter(creator_id=creator_id, is_bot=False, occurred_at__gte=end - timedelta(days=window_days), occurred_at__lt=end)
            .order_by("-occurred_at")
            .values_list("user_agent")[:DEVICE_SHARES_SAMPLE]
        )
        # Counted by the database: a few hundred agents come back instead of every sampled click.
        sql, params = latest.query.sql_with_params()
        with connection.cursor() as db:
            db.execute(f"SELECT latest.user_agent, COUNT(*) FROM ({sql}) latest GROUP BY latest.user_agent", params)  # noqa: S608 (Django's own SQL)
            counts = dict(db.fetchall())
        total = sum(counts.values())
        shares = {_agent_key(agent): n / total for agent, n in counts.items() if n / total >= DEVICE_SHARE_FLOOR}
        # A past day's window takes no new clicks: its shares can be kept much longer. Shares drawn
        # from few clicks (a new creator's first hour) change quickly: kept a second per hundred.
        today = timezone.now().astimezone(UTC).date()
        ttl = DEVICE_SHARES_PAST_TTL if day < today else min(DEVICE_SHARES_TTL, max(total // 100, 1))
        cache.set(key, shares, ttl)
    return shares


def _device_share(conversion: Conversion, window_days: int) -> float:
    """How common the converting browser's user agent is among the creator's clicks (1.0 when it
    sent none: then it tells nothing apart)."""
    if not conversion.user_agent:
        return 1.0
    day = conversion.occurred_at.astimezone(UTC).date()
    return _device_shares(conversion.creator_id, window_days, day).get(_agent_key(conversion.user_agent), DEVICE_SHARE_FLOOR)


_CANDIDATES_SQL = """
    SELECT visitor_id, COUNT(*), MAX(occurred_at), SUM(CASE WHEN ip = %s THEN 1 ELSE 0 END)
    FROM {table}
    WHERE creator_id = %s AND NOT is_bot AND occurred_at >= %s AND occurred_at <= %s AND {match}
    GROUP BY visitor_id ORDER BY MAX(occurred_at) DESC LIMIT 50
"""
_LATER_CLICKS_SQL = """
    SELECT network, user_agent FROM {table}
    WHERE creator_id = %s AND NOT is_bot AND occurred_at > %s AND occurred_at <= %s
        AND network IN ({networks}) AND visitor_id NOT IN ({ours})
    LIMIT %s
"""
_NETWORK_LATEST_SQL = """
    SELECT visitor_id FROM {table}
    WHERE creator_id = %s AND NOT is_bot AND occurred_at >= %s AND occurred_at <= %s AND network = %s
    ORDER BY occurred_at DESC LIMIT %s
"""
# `visitor_id || ''`: with a plain visitor_id PostgreSQL may walk the visitor index in order,
# hoping to stop at the limit, and then read the whole window when the network has fewer visitors
# than that (hundreds of ms); as an expression it reads the network's clicks by their own index.
_NETWORK_VISITORS_SQL = """
    SELECT COUNT(*) FROM (
        SELECT DISTINCT visitor_id || '' FROM {table}
        WHERE creator_id = %s AND NOT is_bot AND occurred_at >= %s AND occurred_at <= %s AND network = %s
        LIMIT %s
    ) network_visitors
"""


def _matching_visitors(conversion: Conversion, since: datetime, match: str, params: list) -> list[dict]:
    """Visitors whose human clicks since `since` match, most recent first (at most 50), each with
    its number of clicks, its last click and how many came from the conversion's very address.
    Plain SQL: this runs for every conversion no cookie or click id explains, recomputes included,
    and building it through the ORM cost more than the database took to answer it."""
    sql = _CANDIDATES_SQL.format(table=Click._meta.db_table, match=match)
    with connection.cursor() as db:
        db.execute(sql, [conversion.ip, conversion.creator_id, since, conversion.occurred_at, *params])
        rows = db.fetchall()
    return [{"visitor_id": visitor_id, "n": n, "last": last, "same_address": same} for visitor_id, n, last, same in rows]


def _network_visitors(conversion: Conversion, since: datetime, enough: int) -> int:
    return _network_visitors_of(conversion.creator_id, conversion.network, since, conversion.occurred_at, enough)


def _fingerprint_people(creator_id: int, fingerprint: str, identity_id: int | None) -> list[int]:
    """Identities other than `identity_id`, each known by an email or a Whop user id (so each a
    distinct person), that converted from a browser with this fingerprint: people who evidently
    send the very signals a fingerprint match rests on, a household's shared phone for one."""
    owners = Identifier.objects.filter(creator_id=creator_id, kind=Identifier.Kind.FINGERPRINT, value=fingerprint)
    if identity_id is not None:
        owners = owners.exclude(identity_id=identity_id)
    owners = owners.filter(identity__identifiers__kind__in=_PERSONAL)
    return list(owners.values_list("identity_id", flat=True).distinct())


def _probabilistic_journey(conversion: Conversion, window_days: int, identity_id: int | None) -> tuple[list[Click], int, dict]:
    """The clicks of the one visitor whose signals match the conversion's, with a confidence.

    A match is worth less the more people could have produced it: visitors sharing the
    fingerprint, visitors on the same network (NAT), clicks from the same kind of device, and a
    match on the /24 alone (a neighbour or family member) rather than the very address.
    """
    if not conversion.network:
        return [], 0, {}
    since = conversion.occurred_at - timedelta(days=window_days)
    method, ceiling = "fingerprint", CONFIDENCE_FINGERPRINT_MAX
    visitors = _matching_visitors(conversion, since, "fingerprint = %s", [conversion.fingerprint]) if conversion.fingerprint else []
    if not visitors and conversion.user_agent:
        method, ceiling = "network_device_language", CONFIDENCE_NETWORK_MAX
        language = conversion.accept_language.split(",", 1)[0].split(";", 1)[0].strip()
        visitors = _matching_visitors(
            conversion,
            max(since, conversion.occurred_at - NETWORK_MATCH_WINDOW),
            "network = %s AND user_agent = %s AND language = %s",
            [conversion.network, conversion.user_agent, language[:16]],
        )
    if not visitors:
        return [], 0, {}
    agent_share = _device_share(conversion, window_days)
    # Counted only once something matched (most conversions of people who never clicked stop
    # above), and only up to the number of visitors that already rules the match out: a carrier
    # NAT holds thousands, and counting them all changed no answer.
    enough = max(int((ceiling / (CONFIDENCE_FLOOR - 1) - len(visitors)) / agent_share) + 2, 1)
    # Every matching visitor is on the network (the fingerprint includes it): when they alone are
    # enough, the count is not needed.
    network_visitors = len(visitors) if enough <= len(visitors) else _network_visitors(conversion, since, enough)
    # Others on this network who would produce the same signals by chance.
    expected_lookalikes = max(network_visitors - 1, 0) * agent_share
    # Several lookalike visitors: the most recent one is the likeliest converter.
    best = visitors[0]
    factor = 1.0 if best["same_address"] else SUBNET_ONLY_FACTOR
    others = len(visitors) + expected_lookalikes
    confidence = round(ceiling * factor / others)
    known_people = 0
    if method == "fingerprint" and confidence >= CONFIDENCE_FLOOR:  # (below it, no count changes the answer)
        # Other known people converting from this fingerprint could each have made the click.
        known_people = len(_fingerprint_people(conversion.creator_id, conversion.fingerprint, identity_id))
        confidence = round(ceiling * factor / (others + known_people))
    evidence = {
        "method": method,
        "matching_visitors": len(visitors),
        "network_visitors": network_visitors,
        "device_share": round(agent_share, 4),
        "same_address": bool(best["same_address"]),
    }
    if known_people:
        evidence["fingerprint_people"] = known_people
    if confidence < CONFIDENCE_FLOOR:
        evidence["rejected"] = f"confidence {confidence} below {CONFIDENCE_FLOOR}"
        return [], 0, evidence
    if _owned_by_someone_else(best["visitor_id"], identity_id, conversion.creator_id):
        evidence["rejected"] = "the matching visitor belongs to another known person"
        return [], 0, evidence
    journey = list(
        _window_clicks(conversion, window_days).filter(visitor_id=best["visitor_id"]).only("id", "public_id", "link_id", "occurred_at", "visitor_id", "network").order_by("occurred_at", "id")
    )
    return journey, confidence, evidence


def identity_observe(*, creator: Creator, keys: list[tuple[str, str]], seen_at: datetime):
    """Record that `keys` belong to one person (a Whop membership, say), outside any conversion.
    Conversions of an identity that merged on the way are re-attributed."""
    identity, merges, _ = identity_resolve(creator=creator, keys=keys, seen_at=seen_at)
    if merges:
        conversions_enqueue_attribution(list(Conversion.objects.filter(identity=identity).values_list("id", flat=True)))
    return identity


# --- attributing ------------------------------------------------------------------------------


def _ledger_rows(conversion: Conversion, before: dict, after: dict) -> list[CreditLedger]:
    """What changed per (model, link), as rows of the credit ledger the dashboard's rollups read."""
    rows = []
    for key in before.keys() | after.keys():
        old_count, old_revenue = before.get(key, (0, Decimal(0)))
        new_count, new_revenue = after.get(key, (0, Decimal(0)))
        if (old_count, old_revenue) != (new_count, new_revenue):
            rows.append(
                CreditLedger(
                    creator_id=conversion.creator_id, link_id=key[1], model=key[0], day=conversion.occurred_at.date(),
                    conversions=new_count - old_count, revenue=new_revenue - old_revenue,
                )
            )
    return rows


def _ledger(conversion: Conversion, before: dict, after: dict) -> None:
    CreditLedger.objects.bulk_create(_ledger_rows(conversion, before, after))


def _credit_state(conversion: Conversion) -> dict:
    return {
        (model, link_id): (1, revenue)
        for model, link_id, revenue in Credit.objects.filter(conversion=conversion).values_list("model", "link_id", "revenue")
    }


def _credit_rows(conversion: Conversion, journey: list[Click], half_life_days: float) -> list[tuple[str, int, Decimal, Decimal]]:
    """(model, link id, weight, revenue) under every model for this journey."""
    touches = [(click.link_id, click.occurred_at) for click in journey]
    net = max((conversion.amount or Decimal(0)) - conversion.refunded_amount, Decimal(0))
    rows = []
    for model in MODELS:
        weights = link_weights(model, touches, conversion.occurred_at, half_life_days)
        revenues = split_revenue(net, list(weights.values()))
        rows += [(model, link_id, weight, revenue) for (link_id, weight), revenue in zip(weights.items(), revenues, strict=True)]
    return rows


def _credits(conversion: Conversion, rows) -> list[Credit]:
    return [Credit(conversion=conversion, model=model, link_id=link_id, weight=weight, revenue=revenue) for model, link_id, weight, revenue in rows]


def _credits_take(conversion: Conversion) -> dict:
    """Delete the conversion's credits, returning what they were (as _credit_state() does)."""
    if connection.vendor != "postgresql":
        before = _credit_state(conversion)
        Credit.objects.filter(conversion=conversion).delete()
        return before
    with connection.cursor() as db:  # one round trip instead of a SELECT and a DELETE
        db.execute(f"DELETE FROM {Credit._meta.db_table} WHERE conversion_id = %s RETURNING model, link_id, revenue", [conversion.pk])  # noqa: S608
        return {(model, link_id): (1, revenue) for model, link_id, revenue in db.fetchall()}


def _store_credits(conversion: Conversion, journey: list[Click], half_life_days: float, *, first: bool) -> None:
    """Replace the conversion's credits; `first`: it was pending, so it has none yet (its status
    and its credits are only ever written together)."""
    before = {} if first else _credits_take(conversion)
    credits = _credits(conversion, _credit_rows(conversion, journey, half_life_days))
    Credit.objects.bulk_create(credits)
    _ledger(conversion, before, {(credit.model, credit.link_id): (1, credit.revenue) for credit in credits})


def _decide(
    conversion: Conversion, journey: list[Click], *, identifiers: list[dict], window_days: int, identity_id: int | None
) -> tuple[list[Click], dict, str, int | None]:
    """The answer for a conversion, given the clicks its identity deterministically reaches in the
    window (oldest first, maybe none): (journey to credit, evidence, status, confidence). With no
    such clicks, probabilistic evidence is weighed instead. Shared by a first attribution and a
    batched re-attribution, which must agree."""
    evidence: dict = {"identifiers": identifiers}
    if journey:
        confidence, evidence["method"] = _deterministic_confidence(conversion, journey)
        continued = _continued_elsewhere(conversion, journey, window_days)
        if continued:
            evidence["continued_elsewhere"] = continued
            confidence = {
                "in_app": CONFIDENCE_CONTINUED_IN_APP,
                "nearby": CONFIDENCE_CONTINUED_NEARBY,
            }.get(continued, confidence - CONTINUED_CROWDED_DISCOUNT)
    else:
        journey, confidence, probabilistic = _probabilistic_journey(conversion, window_days, identity_id)
        evidence.update(probabilistic)
    evidence["clicks"] = [click.public_id for click in journey]
    if not journey:
        return journey, evidence, Conversion.Status.UNATTRIBUTED, None
    return journey, evidence, Conversion.Status.ATTRIBUTED, confidence


def conversion_attribute(*, conversion_id: int) -> Conversion:
    """Resolve who converted, collect their journey in the window, and store credits under every
    model. Idempotent: running it again replaces the credits with the same answer."""
    conversion = Conversion.objects.select_related("creator").get(pk=conversion_id)
    prefs = attribution_settings_for(conversion.creator_id)
    keys = _deterministic_keys(conversion)
    merges = []
    with transaction.atomic():
        identity = None
        added = []
        if keys:
            identity, merges, added = identity_resolve(
                creator=conversion.creator, keys=keys, seen_at=conversion.occurred_at, prefer_identity_id=conversion.identity_id
            )
            identity_observe_fingerprint(identity=identity, fingerprint=conversion.fingerprint, seen_at=conversion.occurred_at)
        conversion = Conversion.objects.select_for_update().get(pk=conversion_id)
        first = conversion.status == Conversion.Status.PENDING
        journey, evidence, status, confidence = _decide(
            conversion,
            _identity_journey(conversion, identity.id, prefs.window_days) if identity else [],
            identifiers=[{"kind": kind, "value": value} for kind, value in keys],
            window_days=prefs.window_days,
            identity_id=identity.id if identity else None,
        )
        conversion.identity = identity
        conversion.evidence, conversion.status, conversion.confidence = evidence, status, confidence
        conversion.attributed_at = timezone.now()
        conversion.save(update_fields=["identity", "evidence", "attributed_at", "status", "confidence"])
        _store_credits(conversion, journey, float(prefs.half_life_days), first=first)
        if conversion.status == Conversion.Status.ATTRIBUTED:
            conversion_attributed_emit(conversion=conversion)
        if merges or any(kind in (Identifier.Kind.VISITOR, Identifier.Kind.CLICK) for kind, _ in added):
            # Late evidence: the identity's other conversions may now have a longer journey.
            touched = Conversion.objects.filter(identity=identity).exclude(pk=conversion.pk).values_list("id", flat=True)
            conversions_enqueue_attribution(list(touched))
        if first and identity and conversion.fingerprint and any(kind in _PERSONAL for kind, _ in keys):
            # Late evidence: a known person now shares this fingerprint, so other people's matches
            # on it were weighed without them. (Only from a first attribution: re-attributing those
            # must not send this one back again.)
            conversions_enqueue_attribution(_fingerprint_matches_of_others(conversion, identity.id))
    return conversion


def _fingerprint_matches_of_others(conversion: Conversion, identity_id: int) -> list[int]:
    """Attributed conversions of other known people credited through this conversion's fingerprint."""
    people = _fingerprint_people(conversion.creator_id, conversion.fingerprint, identity_id)
    if not people:
        return []
    return list(
        Conversion.objects.filter(
            creator_id=conversion.creator_id, identity_id__in=people, fingerprint=conversion.fingerprint,
            status=Conversion.Status.ATTRIBUTED, evidence__method="fingerprint",
        ).values_list("id", flat=True)
    )


def conversions_reattribute(*, creator_id: int, conversion_ids: list[int]) -> list[int]:
    """Re-attribute attributed and unattributed conversions of one creator together, after a
    change of window or half-life: one query for their identities' cookies and click ids, one
    for the clicks those reach, one for their credits, probabilistic evidence checked again where
    no deterministic journey remains, and writes only where the answer changed.

    Their identities need no resolving again: that happened when each was first attributed, and
    later merges re-attribute the conversions they touch on their own. Returns the ids left for
    conversion_attribute(): the pending ones, never attributed yet.
    """
    prefs = attribution_settings_for(creator_id)
    half_life = float(prefs.half_life_days)
    window = timedelta(days=prefs.window_days)
    with transaction.atomic():
        conversions = list(
            Conversion.objects.select_for_update().filter(creator_id=creator_id, pk__in=conversion_ids).order_by("id")
        )
        rest = [conversion.pk for conversion in conversions if conversion.status == Conversion.Status.PENDING]
        batch = [conversion for conversion in conversions if conversion.status != Conversion.Status.PENDING]
        if not batch:
            return rest
        clicks_of = _identity_clicks(creator_id, batch, window)
        old_credits: dict[int, dict] = {}
        for conversion_id, model, link_id, weight, revenue in Credit.objects.filter(
            conversion_id__in=[conversion.pk for conversion in batch]
        ).values_list("conversion_id", "model", "link_id", "weight", "revenue"):
            old_credits.setdefault(conversion_id, {})[(model, link_id)] = (weight, revenue)

        changed, new_credits, ledger = [], [], []
        now = timezone.now()
        for conversion in batch:
            journey, evidence, status, confidence = _decide(
                conversion,
                [
                    click for click in clicks_of.get(conversion.identity_id, ())
                    if conversion.occurred_at - window <= click.occurred_at <= conversion.occurred_at
                ],
                identifiers=(conversion.evidence or {}).get("identifiers", []),
                window_days=prefs.window_days,
                identity_id=conversion.identity_id,
            )
            rows = _credit_rows(conversion, journey, half_life)
            after = {(model, link_id): (weight, revenue) for model, link_id, weight, revenue in rows}
            before = old_credits.get(conversion.pk, {})
            if (after, evidence, status, confidence) == (before, conversion.evidence, conversion.status, conversion.confidence):
                continue
            conversion.evidence, conversion.status, conversion.confidence, conversion.attributed_at = evidence, status, confidence, now
            changed.append(conversion)
            new_credits += _credits(conversion, rows)
            ledger += _ledger_rows(
                conversion,
                {key: (1, revenue) for key, (_, revenue) in before.items()},
                {key: (1, revenue) for key, (_, revenue) in after.items()},
            )
        if changed:
            Credit.objects.filter(conversion_id__in=[conversion.pk for conversion in changed]).delete()
            Credit.objects.bulk_create(new_credits)
            CreditLedger.objects.bulk_create(ledger)
            Conversion.objects.bulk_update(changed, ["evidence", "status", "confidence", "attributed_at"])
            for conversion in changed:
                if conversion.status == Conversion.Status.ATTRIBUTED:
                    conversion_attributed_emit(conversion=conversion)
    return rest


def _identity_clicks(creator_id: int, conversions: list[Conversion], window: timedelta) -> dict[int, list[Click]]:
    """identity id -> the human clicks its cookies and click ids reach in the conversions' time
    span (oldest first), in two queries for the whole batch."""
    owners: dict[tuple[str, str], int] = {}
    for identity_id, kind, value in Identifier.objects.filter(
        identity_id__in={conversion.identity_id for conversion in conversions if conversion.identity_id},
        kind__in=[Identifier.Kind.VISITOR, Identifier.Kind.CLICK],
    ).values_list("identity_id", "kind", "value"):
        owners[(kind, value)] = identity_id
    visitors = [value for kind, value in owners if kind == Identifier.Kind.VISITOR]
    click_ids = [value for kind, value in owners if kind == Identifier.Kind.CLICK]
    if not visitors and not click_ids:
        return {}
    reached = (
        Click.objects.filter(
            creator_id=creator_id, is_bot=False,
            occurred_at__gte=min(conversion.occurred_at for conversion in conversions) - window,
            occurred_at__lte=max(conversion.occurred_at for conversion in conversions),
        )
        .filter(Q(visitor_id__in=visitors) | Q(public_id__in=click_ids))
        .only("id", "public_id", "link_id", "occurred_at", "visitor_id", "network")
    )
    clicks_of: dict[int, dict[int, Click]] = {}
    for click in reached:
        for key in ((Identifier.Kind.VISITOR, click.visitor_id), (Identifier.Kind.CLICK, click.public_id)):
            if key in owners:
                clicks_of.setdefault(owners[key], {})[click.id] = click
    return {identity_id: sorted(clicks.values(), key=lambda c: (c.occurred_at, c.id)) for identity_id, clicks in clicks_of.items()}


def conversion_refund(*, conversion: Conversion, refunded_amount: Decimal) -> Conversion:
    """Set how much of a conversion was refunded; credits' revenue follows in the same proportions."""
    with transaction.atomic():
        conversion = Conversion.objects.select_for_update().get(pk=conversion.pk)
        amount = conversion.amount or Decimal(0)
        conversion.refunded_amount = min(max(refunded_amount, Decimal(0)), amount)
        conversion.save(update_fields=["refunded_amount"])
        net = amount - conversion.refunded_amount
        before = _credit_state(conversion)
        for model in MODELS:
            credits = list(Credit.objects.filter(conversion=conversion, model=model).order_by("id"))
            for credit, revenue in zip(credits, split_revenue(net, [c.weight for c in credits]), strict=True):
                credit.revenue = revenue
            Credit.objects.bulk_update(credits, ["revenue"])
        _ledger(conversion, before, _credit_state(conversion))
        conversion_refunded_emit(conversion=conversion)
    return conversion


# --- sweeping and recomputing -----------------------------------------------------------------

PENDING_GRACE = timedelta(minutes=1)
RECOMPUTE_CHUNK = 500
RECOMPUTE_LEASE_SECONDS = 60
RECOMPUTE_LEASE_RENEW_SECONDS = 10


def conversions_pending_stale(*, limit: int = 5000) -> list[int]:
    cutoff = timezone.now() - PENDING_GRACE
    return list(
        Conversion.objects.filter(status=Conversion.Status.PENDING, created_at__lt=cutoff)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )


def recomputes_abandoned(*, limit: int = 100) -> list[int]:
    """Unfinished recomputes no run holds a lease on: their worker was killed or the task hit its
    time limit. Without this the broker redelivers a killed task only after its visibility
    timeout (twice the task time limit). Those younger than a lease may still be queued."""
    client = shared_redis()
    if client is None:
        return []  # no broker either: recomputes run in the request that starts them
    cutoff = timezone.now() - timedelta(seconds=RECOMPUTE_LEASE_SECONDS)
    ids = Recompute.objects.filter(finished_at__isnull=True, started_at__lt=cutoff).order_by("id").values_list("id", flat=True)[:limit]
    return [recompute_id for recompute_id in ids if not client.exists(_recompute_lease_key(recompute_id))]


def recompute_start(*, creator: Creator) -> Recompute:
    """Start re-attributing every conversion of `creator` (after a change of window or half-life)."""
    from attribution.tasks import recompute_creator

    recompute = Recompute.objects.create(creator=creator, total=Conversion.objects.filter(creator=creator).count())
    transaction.on_commit(lambda: recompute_creator.delay(recompute.id))
    return recompute


def _recompute_lease_key(recompute_id: int) -> str:
    return f"allumi:recompute:{recompute_id}:lease"


def recompute_run(*, recompute_id: int, chunk: int = RECOMPUTE_CHUNK, on_progress=None) -> Recompute:
    """Work through a recompute from its cursor, committing progress after every chunk, so a
    worker killed midway resumes where it stopped instead of starting over.

    With Redis, the run holds a lease it renews as it goes: a second task for the same recompute
    (the sweep's, or the broker redelivering a long task) returns at once, and a killed worker's
    lease expires, which is how `recomputes_abandoned` tells it from a running one.
    """
    client = shared_redis()
    lease = client.lock(_recompute_lease_key(recompute_id), timeout=RECOMPUTE_LEASE_SECONDS, blocking=False) if client else None
    if lease is not None and not lease.acquire():
        return Recompute.objects.get(pk=recompute_id)
    try:
        return _recompute_chunks(recompute_id, chunk, on_progress, lease)
    finally:
        if lease is not None:
            with contextlib.suppress(redis.exceptions.RedisError):  # expired or Redis away: nothing to release
                lease.release()


def _keep_lease(lease, renewed: float) -> float:
    """Renew the run's lease when it is due; raises if it was lost: stop rather than run beside
    another worker."""
    if lease is None or monotonic() - renewed <= RECOMPUTE_LEASE_RENEW_SECONDS:
        return renewed
    lease.extend(RECOMPUTE_LEASE_SECONDS, replace_ttl=True)
    return monotonic()


def _recompute_chunks(recompute_id: int, chunk: int, on_progress, lease) -> Recompute:
    recompute = Recompute.objects.get(pk=recompute_id)
    renewed = monotonic()
    while recompute.finished_at is None:
        ids = list(
            Conversion.objects.filter(creator_id=recompute.creator_id, id__gt=recompute.last_conversion_id)
            .order_by("id")
            .values_list("id", flat=True)[:chunk]
        )
        # Most conversions are re-attributed together; the rest one by one.
        for conversion_id in conversions_reattribute(creator_id=recompute.creator_id, conversion_ids=ids):
            conversion_attribute(conversion_id=conversion_id)
            renewed = _keep_lease(lease, renewed)
        renewed = _keep_lease(lease, renewed)
        updates = {"done": recompute.done + len(ids)}
        if ids:
            updates["last_conversion_id"] = ids[-1]
        else:
            updates["finished_at"] = timezone.now()
        Recompute.objects.filter(pk=recompute.pk).update(**updates)
        recompute.refresh_from_db()
        if on_progress is not None:
            on_progress(recompute)
    return recompute

"""Turning the raw signals of a request into a click's columns.

Parsing the user agent, detecting bots and looking up the country are the slow parts of click
capture (about a millisecond together), so they run when a buffered click is stored, not while
the visitor waits for the redirect.
"""

import functools
import hashlib
from urllib.parse import urlsplit

import ua_parser
from crawlerdetect import CrawlerDetect

# Chat and social apps unfurling a link: not people, whatever the crawler list says.
_PREVIEW_AGENTS = (
    "facebookexternalhit", "facebookcatalog", "twitterbot", "slackbot", "slack-imgproxy", "discordbot",
    "telegrambot", "whatsapp", "linkedinbot", "skypeuripreview", "pinterestbot", "redditbot",
    "embedly", "iframely", "applebot", "google-pagerenderer", "vkshare", "mastodon", "bluesky",
    "snapchat", "viber", "line/", "kakaotalk-scrap", "microsoftpreview", "bitlybot", "outbrain",
)
_TABLET_HINTS = ("ipad", "tablet", "kindle", "silk/", "playbook")
_DESKTOP_OS = ("Windows", "Mac OS X", "Linux", "Ubuntu", "Fedora", "Chrome OS", "ChromeOS", "FreeBSD", "macOS")


@functools.lru_cache(maxsize=8192)
def bot_reason(user_agent: str) -> str:
    """Why this user agent is not a person ('' when it looks like one)."""
    if not user_agent.strip():
        return "no_user_agent"
    lowered = user_agent.lower()
    if any(agent in lowered for agent in _PREVIEW_AGENTS):
        return "link_preview"
    if CrawlerDetect(user_agent=user_agent).isCrawler():
        return "crawler"
    return ""


_IN_APP_AGENTS = ("instagram", "fban", "fbav", "tiktok", "musical_ly", "bytedance", "snapchat", "twitter", "line/")


def is_in_app_browser(user_agent: str) -> bool:
    """A social app's own browser (Instagram, Facebook, TikTok, ...): its cookies and storage are
    not the ones of the person's usual browser."""
    lowered = user_agent.lower()
    return any(agent in lowered for agent in _IN_APP_AGENTS)


@functools.lru_cache(maxsize=8192)
def parse_user_agent(user_agent: str) -> tuple[str, str, str, str]:
    """(browser, os, device type, device model) of a user agent."""
    if not user_agent:
        return "", "", "other", ""
    result = ua_parser.parse(user_agent)
    browser = result.user_agent.family if result.user_agent else ""
    os_name = result.os.family if result.os else ""
    model = result.device.family if result.device and result.device.family != "Other" else ""
    lowered = user_agent.lower()
    if any(hint in lowered for hint in _TABLET_HINTS) or (os_name == "Android" and "mobile" not in lowered):
        device = "tablet"
    elif "mobi" in lowered or os_name in ("iOS", "Android") or model == "iPhone":
        device = "mobile"
    elif os_name in _DESKTOP_OS:
        device = "desktop"
    else:
        device = "other"
    return browser[:64], os_name[:64], device, model[:64]


@functools.cache
def _geoip():
    from geoip2fast import GeoIP2Fast

    return GeoIP2Fast()


@functools.lru_cache(maxsize=16384)
def country_for_ip(ip: str | None) -> str:
    if not ip:
        return ""
    try:
        code = _geoip().lookup(ip).country_code
    except Exception:  # an unparsable or unknown address has no country
        return ""
    return code if code and len(code) == 2 and code.isalpha() and code != "--" else ""


def first_language(accept_language: str) -> str:
    first = accept_language.split(",", 1)[0].split(";", 1)[0].strip()
    return first[:16] if first != "*" else ""


def referrer_domain(referrer: str) -> str:
    if not referrer:
        return ""
    try:
        host = urlsplit(referrer).hostname or ""
    except ValueError:
        return ""
    return host.removeprefix("www.")[:255]


def fingerprint(*, user_agent: str, accept_language: str, accept_encoding: str, client_hints: str, network: str) -> str:
    """A hash of the headers a browser sends the same way every time, plus its network.

    Evidence, not identity: many people share a phone model and a carrier network, so attribution
    weighs a fingerprint match by how common it is.
    """
    material = "\x1f".join((user_agent, accept_language, accept_encoding, client_hints, network))
    return hashlib.sha256(material.encode("utf-8", "replace")).hexdigest()

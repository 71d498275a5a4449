"""Building the URL a visitor lands on.

Query segments of the destination are kept byte for byte; only parameters the link sets itself
(its UTM fields, and `allumi_cid`) are replaced, so a creator's own query and fragment survive.
"""

from urllib.parse import quote, unquote_plus, urlencode

CLICK_ID_PARAM = "allumi_cid"


def _split(url: str) -> tuple[str, str, str]:
    before_fragment, hash_, fragment = url.partition("#")
    base, _, query = before_fragment.partition("?")
    return base, query, fragment if hash_ else None


def split_for_click_id(url: str, utm: dict[str, str]) -> tuple[str, str | None]:
    """(url without fragment and with UTM merged and any allumi_cid removed, fragment or None)."""
    base, query, fragment = _split(url)
    replaced = set(utm) | {CLICK_ID_PARAM}
    kept = [segment for segment in query.split("&") if segment and unquote_plus(segment.split("=", 1)[0]) not in replaced]
    added = urlencode(utm, quote_via=quote) if utm else ""
    merged = "&".join(kept + ([added] if added else []))
    return (f"{base}?{merged}" if merged else base), fragment


def with_click_id(prefix: str, fragment: str | None, click_id: str | None) -> str:
    if click_id:
        prefix = f"{prefix}{'&' if '?' in prefix else '?'}{CLICK_ID_PARAM}={click_id}"
    return prefix if fragment is None else f"{prefix}#{fragment}"


def merge_utm(url: str, utm: dict[str, str]) -> str:
    prefix, fragment = split_for_click_id(url, utm)
    return with_click_id(prefix, fragment, None)

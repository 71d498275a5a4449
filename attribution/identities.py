"""Identity resolution services: deterministic identifiers own identities and merge them.

An identifier (email, visitor cookie, click id, Whop user, external customer id) belongs to at most
one live identity. When a conversion brings identifiers that belong to different identities, those
identities merge into the oldest one; each merge is recorded with the identifier that tied them,
and an operator can revert it. Probabilistic evidence never merges (see attribution.conversions).
"""

from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from allumi.accounts.models import Creator
from attribution.models import Conversion, Identifier, Identity, IdentityMerge

Key = tuple[str, str]  # (kind, value)


def _identifiers_for(*, creator: Creator, keys: list[Key]):
    query = Q()
    for kind, value in keys:
        query |= Q(kind=kind, value=value)
    return Identifier.objects.filter(query, creator=creator).exclude(kind=Identifier.Kind.FINGERPRINT)


def identity_merge(*, survivor: Identity, merged: Identity, evidence: Key) -> IdentityMerge:
    """Fold `merged` into `survivor`: its identifiers and conversions move over."""
    identifier_ids = list(merged.identifiers.values_list("id", flat=True))
    conversion_ids = list(Conversion.objects.filter(identity=merged).values_list("id", flat=True))
    # A fingerprint both identities saw would break identifier_unique_per_identity: keep one row.
    survivor_fingerprints = survivor.identifiers.filter(kind=Identifier.Kind.FINGERPRINT).values_list("value", flat=True)
    duplicates = merged.identifiers.filter(kind=Identifier.Kind.FINGERPRINT, value__in=list(survivor_fingerprints))
    duplicate_ids = set(duplicates.values_list("id", flat=True))
    duplicates.delete()
    identifier_ids = [pk for pk in identifier_ids if pk not in duplicate_ids]
    Identifier.objects.filter(id__in=identifier_ids).update(identity=survivor)
    Conversion.objects.filter(id__in=conversion_ids).update(identity=survivor)
    merged.merged_into = survivor
    merged.save(update_fields=["merged_into"])
    return IdentityMerge.objects.create(
        creator_id=survivor.creator_id,
        survivor=survivor,
        merged=merged,
        evidence_kind=evidence[0],
        evidence_value=evidence[1],
        moved_identifier_ids=identifier_ids,
        moved_conversion_ids=conversion_ids,
    )


def identity_resolve(
    *, creator: Creator, keys: list[Key], seen_at: datetime, prefer_identity_id: int | None = None
) -> tuple[Identity, list[IdentityMerge], list[Key]]:
    """The identity owning `keys` (deterministic identifiers), merging and creating as needed.

    Returns (identity, merges made, keys newly attached). Identities whose merge an operator
    reverted stay apart; then the preferred identity (the conversion's current one) keeps its keys.
    """
    keys = list(dict.fromkeys((kind, value) for kind, value in keys if value))
    for attempt in range(3):
        try:
            with transaction.atomic():
                return _resolve_once(creator=creator, keys=keys, seen_at=seen_at, prefer_identity_id=prefer_identity_id)
        except IntegrityError:
            # Another worker claimed one of these identifiers at the same moment: read again.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _kept_apart(identity_ids) -> set[frozenset]:
    reverted = IdentityMerge.objects.filter(
        reverted_at__isnull=False, survivor_id__in=identity_ids, merged_id__in=identity_ids
    ).values_list("survivor_id", "merged_id")
    return {frozenset(pair) for pair in reverted}


def _resolve_once(*, creator, keys, seen_at, prefer_identity_id):
    existing = list(_identifiers_for(creator=creator, keys=keys).select_related("identity").select_for_update())
    owners: dict[int, Identity] = {}
    evidence_for: dict[int, Key] = {}
    for identifier in existing:
        owners.setdefault(identifier.identity_id, identifier.identity)
        evidence_for.setdefault(identifier.identity_id, (identifier.kind, identifier.value))
    merges = []
    if owners:
        survivor = owners.get(prefer_identity_id) or owners[min(owners)]
        apart = _kept_apart(list(owners)) if len(owners) > 1 else set()
        for identity_id, identity in sorted(owners.items()):
            if identity_id != survivor.id and frozenset((identity_id, survivor.id)) not in apart:
                merges.append(identity_merge(survivor=survivor, merged=identity, evidence=evidence_for[identity_id]))
    else:
        survivor = Identity.objects.create(creator=creator)
    known = {(identifier.kind, identifier.value) for identifier in existing}
    added = [(kind, value) for kind, value in keys if (kind, value) not in known]
    Identifier.objects.bulk_create(
        [Identifier(creator=creator, identity=survivor, kind=kind, value=value, first_seen=seen_at) for kind, value in added]
    )
    return survivor, merges, added


def identity_observe_fingerprint(*, identity: Identity, fingerprint: str, seen_at: datetime) -> None:
    if fingerprint:
        # One INSERT that does nothing when the identity already has it (identifier_unique_per_identity).
        Identifier.objects.bulk_create(
            [Identifier(creator_id=identity.creator_id, identity=identity, kind=Identifier.Kind.FINGERPRINT, value=fingerprint, first_seen=seen_at)],
            ignore_conflicts=True,
        )


@transaction.atomic
def identity_merge_revert(*, merge: IdentityMerge) -> list[int]:
    """Undo a merge; returns the ids of conversions whose attribution must be recomputed."""
    merge = IdentityMerge.objects.select_for_update().get(pk=merge.pk)
    if merge.reverted_at is not None:
        return []
    Identifier.objects.filter(id__in=merge.moved_identifier_ids, identity=merge.survivor).update(identity=merge.merged)
    Conversion.objects.filter(id__in=merge.moved_conversion_ids).update(identity=merge.merged)
    Identity.objects.filter(pk=merge.merged_id).update(merged_into=None)
    merge.reverted_at = timezone.now()
    merge.save(update_fields=["reverted_at"])
    return list(
        Conversion.objects.filter(identity_id__in=[merge.survivor_id, merge.merged_id]).values_list("id", flat=True)
    )

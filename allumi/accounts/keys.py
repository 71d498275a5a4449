"""API key format: a recognisable prefix and 32 base62 characters from the OS CSPRNG."""

import hashlib
import secrets
import string

BASE62 = string.digits + string.ascii_letters
SECRET_PREFIX = "sk_live_"  # noqa: S105 (a prefix, not a secret)
PUBLISHABLE_PREFIX = "pk_live_"


def random_base62(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def new_key(prefix: str) -> str:
    return prefix + random_base62(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()

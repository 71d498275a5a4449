"""Encryption of secrets Allumi must read back (a creator's Whop signing secret and API key).

Fernet (AES-128-CBC + HMAC-SHA256) with a key derived from SECRET_KEY: a database dump alone does
not reveal the secrets. Rotating SECRET_KEY means re-entering them.
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet() -> Fernet:
    digest = hashlib.sha256(b"allumi.secrets:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode() if plaintext else ""


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("this secret was encrypted with another SECRET_KEY; enter it again") from None

"""Provider API keys at rest: Fernet encryption keyed from FIELD_ENCRYPTION_KEY.

The setting holds one or more keys, comma-separated. The first encrypts; every key decrypts,
so a key is rotated by putting a new one first, re-encrypting (`manage.py rotate_provider_keys`)
and then removing the old one.
"""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class KeyDecryptionError(Exception):
    """The stored key was encrypted with a key that FIELD_ENCRYPTION_KEY no longer holds."""


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(k.strip().encode()) for k in settings.FIELD_ENCRYPTION_KEYS])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise KeyDecryptionError(
            "a provider API key cannot be decrypted with FIELD_ENCRYPTION_KEY"
        ) from None


def reencrypt(token: str) -> str:
    """The same secret under the current first key (a no-op for tokens already under it)."""
    return _fernet().rotate(token.encode()).decode()


"""Derive a tenant's preferred schema name (or table prefix) from its natural key.

The name is computed once, at creation, and stored on the tenant row. The
derivation is deterministic and needs no database look-up;
:mod:`tenancy._primitives.allocation` then checks, under a lock, that nothing
else has the name and routes around it when something does:

- a single-part key already made of ``[a-z0-9_]`` (no leading, trailing or
  doubled underscore, not ending like a hash suffix) is used as is:
  ``("acme",)`` -> ``tenant_acme``;
- any other key (upper case, spaces, unicode, several parts) is normalised and
  suffixed with a hash of the exact key, so keys that normalise alike still
  get distinct names: ``("Acme Corp",)`` -> ``tenant_acme_corp_1f3a9c2e5b7d4a60``
  (64 bits of hash: a collision is not expected before billions of keys);
- a name longer than PostgreSQL's 63-byte identifier limit is cut and
  suffixed with the hash (PostgreSQL would silently truncate it instead).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from tenancy.exceptions import InvalidTenantKey

#: PostgreSQL's NAMEDATALEN - 1: longer identifiers are silently truncated.
MAX_IDENTIFIER_BYTES = 63
#: Length of the hash suffix that keeps normalised names unique (hex digits: 64 bits).
HASH_LENGTH = 16
#: Schema names that no tenant may ever take.
RESERVED_NAMES = frozenset({"public", "information_schema"})
#: Prefixes owned by PostgreSQL and by this library (warm pool, templates).
RESERVED_PREFIXES = ("pg_", "tenancy_")

_CLEAN = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
#: A clean key ending like a hash suffix is hashed too: "acme_corp_e9832fd4" must
#: never take the name that "Acme Corp" is given.
_LOOKS_HASHED = re.compile(rf"_[0-9a-f]{{{HASH_LENGTH}}}$")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
_NOT_ALLOWED = re.compile(r"[^a-z0-9]+")


def schema_name_for(key: Sequence[Any], prefix: str) -> str:
    """Return the schema name for a natural key, or raise :class:`InvalidTenantKey`."""
    parts = _key_parts(key)
    _check_prefix(prefix)
    raw = "_".join(parts)
    slug = _NOT_ALLOWED.sub("_", _ascii(raw).lower()).strip("_")
    if not slug:
        raise InvalidTenantKey(
            key, "nothing is left of it after normalisation to letters, digits and underscores"
        )
    exact = len(parts) == 1 and _CLEAN.match(raw) is not None and not _LOOKS_HASHED.search(raw)
    name = prefix + slug
    if not _IDENTIFIER.match(name):
        # Only reachable with an empty prefix and a key starting with a digit.
        name, exact = "t" + name, False
    if not exact or len(name.encode()) > MAX_IDENTIFIER_BYTES:
        name = with_suffix(name, _digest(parts))
    _check_not_reserved(key, name)
    return name


def with_suffix(name: str, suffix: str) -> str:
    """Return ``name`` cut to fit ``_<suffix>`` within the identifier limit, suffixed."""
    tail = "_" + suffix
    return name[: MAX_IDENTIFIER_BYTES - len(tail)].rstrip("_") + tail


def is_reserved(name: str) -> bool:
    """Return whether PostgreSQL or the library keeps ``name`` for itself."""
    return name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES)


def _key_parts(key: Sequence[Any]) -> list[str]:
    if isinstance(key, str | bytes) or not isinstance(key, Sequence):
        raise InvalidTenantKey(key, "natural_key() must return a tuple, e.g. (self.name,)")
    parts = ["" if part is None else str(part) for part in key]
    if not parts or not any(part.strip() for part in parts):
        raise InvalidTenantKey(key, "it is empty; give the tenant a non-empty natural key")
    return parts


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _digest(parts: list[str]) -> str:
    # JSON keeps the parts apart: ("a", "b") and ("a\x1fb",) digest differently.
    joined = json.dumps(parts).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(joined, digest_size=HASH_LENGTH // 2).hexdigest()


def _check_prefix(prefix: str) -> None:
    if prefix and not re.match(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*_?$", prefix):
        raise ImproperlyConfigured(
            f"TENANCY_SCHEMA_PREFIX {prefix!r} must be lower-case letters, digits and single "
            "underscores, starting with a letter (for example 'tenant_')."
        )


def _check_not_reserved(key: Sequence[Any], name: str) -> None:
    if is_reserved(name):
        raise InvalidTenantKey(
            key,
            f"it would name the reserved schema {name!r}; choose another key or set "
            "TENANCY_SCHEMA_PREFIX (default 'tenant_')",
        )

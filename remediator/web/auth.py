"""Webhook credentials: bearer token or basic auth, compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from remediator.errors import ConfigError
from remediator.settings import AuthSettings


@dataclass(frozen=True)
class Credentials:
    token: bytes | None
    basic: bytes | None  # b"user:password"

    @classmethod
    def from_settings(cls, auth: AuthSettings) -> Credentials | None:
        """The accepted credentials; None only when insecure mode was chosen explicitly."""
        token = auth.resolved_token()
        password = auth.resolved_password()
        basic = f"{auth.username}:{password}".encode() if password is not None else None
        if token is None and basic is None:
            if auth.insecure_no_auth:
                return None
            raise ConfigError(
                "refusing to start: no webhook credentials. Set auth.bearer_token "
                "(or REMEDIATOR_AUTH__BEARER_TOKEN, or auth.bearer_token_file), or "
                "auth.username + auth.password, or start with --insecure-no-auth"
            )
        return cls(token.encode() if token else None, basic)

    def accepts(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, value = header.partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer" and self.token is not None:
            return hmac.compare_digest(value.encode(), self.token)
        if scheme == "basic" and self.basic is not None:
            try:
                decoded = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(decoded, self.basic)
        return False

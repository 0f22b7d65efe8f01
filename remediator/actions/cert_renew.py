"""``cert_renew``: trigger cert-manager re-issuance, as ``cmctl renew`` does."""

from __future__ import annotations

from typing import ClassVar

from remediator.actions.base import Params, RenderedTarget


class CertRenewParams(Params):
    pass


class CertRenew:
    name: ClassVar[str] = "cert_renew"
    mutates: ClassVar[bool] = True
    kinds: ClassVar[frozenset[str]] = frozenset({"Certificate"})
    params_model: ClassVar[type[Params]] = CertRenewParams

    def describe(self, target: RenderedTarget, params: Params) -> str:
        return (
            f"renew {target}: set condition Issuing=True (reason ManuallyTriggered) "
            "so cert-manager re-issues it"
        )

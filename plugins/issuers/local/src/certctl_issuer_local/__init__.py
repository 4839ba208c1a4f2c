"""certctl-issuer-local: an in-process CA (self-signed root or sub-CA) for certctl."""

from certctl_issuer_local.config import LocalIssuerConfig
from certctl_issuer_local.issuer import ROOT_STATE_KEY, LocalIssuer

__version__ = "0.1.0"

__all__ = ["ROOT_STATE_KEY", "LocalIssuer", "LocalIssuerConfig"]

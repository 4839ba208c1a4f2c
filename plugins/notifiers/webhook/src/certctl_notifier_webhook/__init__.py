"""certctl-notifier-webhook: HMAC-signed JSON notifications with retries."""

from certctl_notifier_webhook.config import WebhookNotifierConfig
from certctl_notifier_webhook.notifier import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookNotifier,
    sign,
    verify_signature,
)

__version__ = "0.1.0"

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookNotifier",
    "WebhookNotifierConfig",
    "sign",
    "verify_signature",
]

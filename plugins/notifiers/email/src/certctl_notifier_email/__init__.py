"""certctl-notifier-email: notifications as plain-text e-mail over SMTP."""

from certctl_notifier_email.config import EmailNotifierConfig, SmtpSecurity
from certctl_notifier_email.notifier import EmailNotifier, build_message

__version__ = "0.1.0"

__all__ = ["EmailNotifier", "EmailNotifierConfig", "SmtpSecurity", "build_message"]

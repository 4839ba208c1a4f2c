"""certctl-notifier-slack: notifications as Slack messages through an incoming webhook."""

from certctl_notifier_slack.config import MessageFormat, SlackNotifierConfig
from certctl_notifier_slack.notifier import SlackNotifier, build_payload

__version__ = "0.1.0"

__all__ = ["MessageFormat", "SlackNotifier", "SlackNotifierConfig", "build_payload"]

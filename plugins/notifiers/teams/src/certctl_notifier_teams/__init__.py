"""certctl-notifier-teams: notifications as Microsoft Teams cards through an incoming webhook."""

from certctl_notifier_teams.config import CardFormat, TeamsNotifierConfig
from certctl_notifier_teams.notifier import TeamsNotifier, build_payload

__version__ = "0.1.0"

__all__ = ["CardFormat", "TeamsNotifier", "TeamsNotifierConfig", "build_payload"]

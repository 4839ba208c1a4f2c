"""certctl-target-nginx: deploy certificates to NGINX with config test, reload and rollback."""

from certctl_target_nginx.config import NginxTargetConfig
from certctl_target_nginx.target import NginxTarget

__version__ = "0.1.0"

__all__ = ["NginxTarget", "NginxTargetConfig"]

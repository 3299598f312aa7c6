"""Config holders for tests that build one piece at a time."""

from __future__ import annotations

from monitor.config.holder import ConfigHolder
from monitor.config.schema import Config

DAY = 86400.0


def config_with(
    *,
    warning: float = 7 * DAY,
    critical: float = DAY,
    repeat: float = 3600.0,
    expose_relative: bool = False,
) -> Config:
    return Config.model_validate(
        {
            "agents": [{"id": "agent_1"}],
            "thresholds": {"warning": warning, "critical": critical},
            "alerts": {"repeat_interval": repeat},
            "metrics": {"expose_relative": expose_relative},
        }
    )


def holder(
    *,
    warning: float = 7 * DAY,
    critical: float = DAY,
    repeat: float = 3600.0,
    expose_relative: bool = False,
) -> ConfigHolder:
    """A holder whose settings are the defaults but for the values given."""
    return ConfigHolder(
        config_with(
            warning=warning, critical=critical, repeat=repeat, expose_relative=expose_relative
        )
    )

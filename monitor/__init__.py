"""elevenlabs-link-monitor: a Prometheus exporter for ElevenLabs agents' shareable links."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("elevenlabs-link-monitor")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

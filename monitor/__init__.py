"""elevenlabs-link-monitor: a Prometheus exporter for ElevenLabs agents' shareable links."""

# The one place the version is written: pyproject.toml reads it (hatch's dynamic version),
# and a test keeps the Helm chart, the Dockerfile and CHANGELOG.md in step with it.
__version__ = "0.1.0"

# syntax=docker/dockerfile:1
# elevenlabs-link-monitor container image, built from the wheel `make dist` publishes.
#   docker build -t elevenlabs-link-monitor:0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" \
#     --build-arg SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)" .
#   docker run --rm -p 9877:9877 -e ELEVENLABS_API_KEY \
#     -v "$PWD/config.yaml:/etc/elevenlabs-link-monitor/config.yaml:ro" \
#     --read-only elevenlabs-link-monitor:0.1.0
#   docker run --rm -p 9877:9877 elevenlabs-link-monitor:0.1.0 demo --host 0.0.0.0   # no key, no network

# ---- builder: make the wheel, then a virtualenv of only it and its pinned dependencies ----
FROM python:3.11.11-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# The commit's time makes this wheel the one `make dist` publishes, byte for byte (the build
# backend is pinned in pyproject.toml); the default is hatchling's own fixed time.
ARG SOURCE_DATE_EPOCH=1580601600

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY monitor ./monitor
COPY deploy/release/requirements.txt ./deploy/release/

# 1. The wheel, by the standard front end (in a virtualenv of its own: nothing of it ships).
# 2. /opt/venv without pip: the wheel and exactly the pinned runtime dependencies
#    (--no-deps), then `pip check` proves the pins satisfy every requirement.
# 3. Every module compiled, as the runtime root is read-only.
RUN python -m venv /opt/build \
 && /opt/build/bin/pip install --no-cache-dir build==1.6.1 \
 && /opt/build/bin/python -m build --wheel --outdir /opt/dist . \
 && python -m venv --without-pip /opt/venv \
 && python -m pip --python /opt/venv/bin/python install --no-cache-dir --no-deps \
      -r deploy/release/requirements.txt /opt/dist/*.whl \
 && python -m pip --python /opt/venv/bin/python check \
 && /opt/venv/bin/python -m compileall -q -j 0 /opt/venv

# ---- runtime ----
FROM python:3.11.11-slim-bookworm

# VERSION must equal monitor/__init__.py's __version__ (a test checks it); REVISION is the
# git commit, exported as build_info's `revision` label.
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="elevenlabs-link-monitor" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.description="Prometheus exporter for the expiry of ElevenLabs agents' shareable links" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/elevenlabs-link-monitor/elevenlabs-link-monitor" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.11-slim-bookworm"

# The base image ships the standard library without bytecode: compile it here,
# once, since nothing can be written at run time (readOnlyRootFilesystem).
RUN python -m compileall -q -j 0 /usr/local/lib/python3.11

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MONITOR_CONFIG=/etc/elevenlabs-link-monitor/config.yaml \
    MONITOR_REVISION=${REVISION}

# Numeric, so Kubernetes can verify runAsNonRoot without a passwd entry.
USER 65532:65532

EXPOSE 9877

# Kubernetes ignores HEALTHCHECK and uses its probes; docker and compose use this. It reads
# the config at $MONITOR_CONFIG: its port, and HTTPS when server.tls is set (no curl needed).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-m", "monitor.healthcheck"]

ENTRYPOINT ["elevenlabs-link-monitor"]
CMD ["run"]

# syntax=docker/dockerfile:1
# remediator: the webhook server. Build: docker build -t remediator .
# Run: docker run -p 9595:9595 -e REMEDIATOR_AUTH__BEARER_TOKEN=... remediator
# (shadow mode, SQLite in /data, the shipped runbooks; mount a config and pass
#  --config /etc/remediator/config/remediator.yaml to change that, as the Helm chart does).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: install the package and its dependencies into a virtualenv ----------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, so editing the code does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir remediator && touch remediator/__init__.py \
    && pip install . \
    && pip uninstall -y remediator
COPY remediator/ remediator/
RUN rm -rf build ./*.egg-info \
    && pip install --no-deps . \
    && pip uninstall -y pip setuptools wheel \
    && python -m compileall -q /opt/venv

# ---- runtime: Python, the virtualenv, the shipped runbooks; no compilers, no pip -------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="remediator" \
      org.opencontainers.image.description="Alertmanager-driven auto-remediation for Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 remediator \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin remediator \
    && mkdir -p /data /etc/remediator/config \
    && chown 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
COPY runbooks/ /etc/remediator/runbooks/
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 9595
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9595/healthz', timeout=4)"]
ENTRYPOINT ["remediator", "serve"]
CMD ["--host", "0.0.0.0", "--port", "9595", "--runbooks", "/etc/remediator/runbooks", "--store", "sqlite+aiosqlite:////data/remediator.db"]

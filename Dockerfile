# The driftwatch image: workers (`driftwatch worker`), the read-only API (`driftwatch api`)
# and the CLI. Built by docker-compose.yml; settings come from DRIFTWATCH_* variables.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# /var/lib/driftwatch-auth: where the compose auth-init job writes the basic-auth web
# config (a volume mounted there starts owned by driftwatch).
RUN useradd --create-home --uid 10001 driftwatch \
    && install -d -o driftwatch -g driftwatch -m 0755 /var/lib/driftwatch-auth

# Dependencies first (a layer that changes only with the lock file): every file pinned
# by SHA-256 (regenerate with scripts/lock.sh), the build backend included.
COPY requirements/runtime.lock requirements/runtime.lock
RUN pip install --require-hashes --no-deps -r requirements/runtime.lock

COPY pyproject.toml README.md ./
COPY src/ src/
COPY deploy/clickhouse/ deploy/clickhouse/
COPY streams/ streams/
COPY rules/ rules/
# Editable install of driftwatch alone (its dependencies are all in the lock): the schema
# migrations are reached through the package's store/ddl -> deploy/clickhouse/migrations
# link, which stays valid in /app. No build isolation: the locked setuptools builds it.
RUN pip install --no-deps --no-build-isolation -e . && pip check && driftwatch --version

USER driftwatch
ENV DRIFTWATCH_WORKER_WEB_HOST=0.0.0.0 \
    DRIFTWATCH_LOG_FORMAT=json
EXPOSE 6066 6067
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:6066/healthz', timeout=4)" || exit 1
ENTRYPOINT ["driftwatch"]
CMD ["worker", "--app-dir", "/app", "--workdir", "/tmp/driftwatch"]

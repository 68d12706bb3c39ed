# The driftwatch image: workers (`driftwatch worker`), the read-only API (`driftwatch api`)
# and the CLI. Built by docker-compose.yml; settings come from DRIFTWATCH_* variables.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

RUN useradd --create-home --uid 10001 driftwatch

COPY pyproject.toml README.md ./
COPY src/ src/
COPY deploy/clickhouse/ deploy/clickhouse/
COPY streams/ streams/
COPY rules/ rules/
# Editable install: the schema migrations are reached through the package's
# store/ddl -> deploy/clickhouse/migrations link, which stays valid in /app.
RUN pip install -e . && driftwatch --version

USER driftwatch
ENV DRIFTWATCH_WORKER_WEB_HOST=0.0.0.0 \
    DRIFTWATCH_LOG_FORMAT=json
EXPOSE 6066 6067
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:6066/healthz', timeout=4)" || exit 1
ENTRYPOINT ["driftwatch"]
CMD ["worker", "--app-dir", "/app", "--workdir", "/tmp/driftwatch"]

# A leadscore worker: `docker build -t leadscore .`, then see docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY pyproject.toml README.md /src/
COPY scoring/ /src/scoring/
COPY streams/ /src/streams/
RUN pip install /src \
    && rm -rf /src

# The data directory is created here so that a fresh named volume mounted on it
# inherits the non-root owner.
RUN useradd --system --uid 10001 --create-home --home-dir /home/leadscore leadscore \
    && mkdir /data \
    && chown leadscore:leadscore /data
USER leadscore
WORKDIR /home/leadscore

# In a container the web views must listen beyond loopback for the port mapping to reach them.
ENV LEADSCORE_DATA_DIR=/data \
    LEADSCORE_WEB_BIND=0.0.0.0
VOLUME ["/data"]
EXPOSE 6066

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6066/health', timeout=4)"]

ENTRYPOINT ["leadscore"]
CMD ["worker"]

# The explorer image: slim, non-root, only the runtime dependencies.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EXPLORER_STATE_DIR=/var/lib/explorer

RUN useradd --system --uid 10001 --home-dir /var/lib/explorer --create-home explorer

WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY explorer ./explorer
# explorer/schema.md (the MCP server's schema resource) links to docs/schema.md
COPY docs/schema.md ./docs/schema.md
# A C compiler for the install only: setup.py compiles the per-chat modules with mypyc
# (less CPU a chat). Without one the install falls back to plain Python; pip failing
# still fails the build.
RUN set -e; \
    apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
        || echo "no C compiler: the per-chat modules stay plain Python"; \
    pip install .; \
    apt-get purge -y --auto-remove gcc libc6-dev || true; \
    rm -rf /var/lib/apt/lists/* /app/build

USER explorer
VOLUME ["/var/lib/explorer"]
ENTRYPOINT ["explorer"]
CMD ["--help"]

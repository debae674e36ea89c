# The explorer image: slim, non-root, only the runtime dependencies.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EXPLORER_STATE_DIR=/var/lib/explorer

RUN useradd --system --uid 10001 --home-dir /var/lib/explorer --create-home explorer

WORKDIR /app
COPY pyproject.toml README.md ./
COPY explorer ./explorer
RUN pip install . && rm -rf /app/build

USER explorer
VOLUME ["/var/lib/explorer"]
ENTRYPOINT ["explorer"]
CMD ["--help"]

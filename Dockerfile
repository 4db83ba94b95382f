# The proxy: `docker build -t mistral-ollama-proxy .`, or through compose.yaml.
# With MISTRAL_URL it fronts a mistral.rs server; without, it runs mistral.rs in-process (CPU) and fetches its
# default model into MODEL_CACHE_DIR on first start.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build
COPY pyproject.toml README.md ./
COPY app/ app/
COPY otel/ otel/
RUN pip install . && rm -rf /build

RUN useradd --system --uid 10001 --create-home --home-dir /home/proxy proxy \
    && mkdir /cache && chown proxy:proxy /cache
USER proxy
WORKDIR /home/proxy

# Inside a container the proxy must listen on every interface; compose decides what the host publishes.
ENV BIND_ADDRESS=0.0.0.0:11434 \
    MODEL_CACHE_DIR=/cache
EXPOSE 11434

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:11434/', timeout=3)"]

CMD ["mistral-ollama-proxy", "serve"]

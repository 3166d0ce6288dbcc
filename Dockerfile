# otel-llm: the gateway (`otel-llm serve`) and the demo (`otel-llm demo`) in one image.
#
#   docker build -t otel-llm .
#   docker run --rm -p 127.0.0.1:4317:4317 -p 127.0.0.1:4318:4318 otel-llm \
#       serve --host 0.0.0.0 --forward http://jaeger:4317
#
# The entrypoint is `otel-llm`: the arguments are a subcommand and its flags. Every flag of
# `serve` can also be given as OTEL_LLM_<FLAG> in the environment (prefer OTEL_LLM_TOKEN to
# --token). Pin the base image by digest for reproducible builds:
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim@sha256:... .
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

# openai: the demo drives the real openai client against its local stand-in LLM.
ARG OTEL_LLM_EXTRAS=openai

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build
COPY pyproject.toml README.md ./
COPY otel_llm ./otel_llm
# A regular (not editable) install: the build directory is not needed afterwards.
RUN pip install ".[${OTEL_LLM_EXTRAS}]" \
    && rm -rf /build

# An unprivileged user owns only the state directory (call store, optional on-disk queue).
RUN groupadd --system --gid 10001 otel-llm \
    && useradd --system --uid 10001 --gid otel-llm --home-dir /var/lib/otel-llm \
       --create-home --shell /usr/sbin/nologin otel-llm
WORKDIR /var/lib/otel-llm
USER 10001:10001

# In a container the gateway must listen on all interfaces; publish its ports on 127.0.0.1 (or
# behind a proxy with --token and TLS), never on a public address without auth.
ENV OTEL_LLM_HOST=0.0.0.0 \
    OTEL_LLM_DB=sqlite:////var/lib/otel-llm/otel-llm.db
VOLUME ["/var/lib/otel-llm"]
# 4317 OTLP/gRPC; 4318 OTLP/HTTP, /metrics, API and dashboard
EXPOSE 4317 4318

# For `serve`: /metrics is served on the HTTP port without the token.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:4318/health/ready', timeout=4)"]

ENTRYPOINT ["otel-llm"]
CMD ["serve"]

# syntax=docker/dockerfile:1
#
# Portico gateway image.
#   docker build -t portico .
#   docker run --rm -p 50051:50051 portico                        # embedded default (fake provider)
#   docker run --rm -p 50051:50051 -e OPENAI_API_KEY \
#     -v "$PWD/portico.yaml:/etc/portico/portico.yaml:ro" \
#     -e PORTICO_CONFIG=/etc/portico/portico.yaml portico
#
# Two stages: the first builds a virtualenv with the gateway installed, the second copies
# only that virtualenv onto a clean slim base, so no build tool or source tree ships.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/portico
WORKDIR /src
# Only what the wheel is built from (see .dockerignore).
COPY pyproject.toml README.md ./
COPY clients/python/portico/ clients/python/portico/
COPY server/portico_server/ server/portico_server/
RUN /opt/portico/bin/pip install ".[server]"

FROM ${PYTHON_IMAGE}
# A fixed numeric uid/gid, so Kubernetes `runAsNonRoot` can verify it without a passwd lookup.
RUN groupadd --system --gid 10001 portico \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin portico
COPY --from=build /opt/portico /opt/portico
ENV PATH=/opt/portico/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORTICO_ADDRESS=127.0.0.1:50051
USER 10001:10001
EXPOSE 50051
# `portico health` asks grpc.health.v1 for the whole server ("" entry) at PORTICO_ADDRESS:
# exit 0 when SERVING. Provider outages do not fail it, by design (see the health docs).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["portico", "health", "--timeout", "3"]
# SIGTERM (docker stop) drains in-flight calls for server.shutdown_grace seconds (default
# 10); give `docker stop` a longer timeout than that, e.g. --stop-timeout 15.
STOPSIGNAL SIGTERM
ENTRYPOINT ["portico"]
CMD ["serve", "--address", "0.0.0.0:50051"]

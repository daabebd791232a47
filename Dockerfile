# syntax=docker/dockerfile:1
FROM rust:1-slim-bookworm AS build
# make builds jemalloc, the server's allocator (tikv-jemalloc-sys).
RUN apt-get update && apt-get install -y --no-install-recommends make && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The web pages' vendored files (GraphiQL, the charts), embedded by src/web/assets.rs.
COPY assets ./assets
COPY benches ./benches
# The release profile keeps debug info for profiling (Cargo.toml); the image ships without it.
RUN cargo build --release --locked --bin tradeledger \
 && strip --strip-debug target/release/tradeledger

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin tradeledger \
 && mkdir -p /data && chown tradeledger /data && chmod 700 /data
COPY --from=build /src/target/release/tradeledger /usr/local/bin/tradeledger
COPY fixtures /opt/tradeledger/fixtures
USER tradeledger
ENV TRADELEDGER_DATA_DIR=/data \
    TRADELEDGER_LISTEN=0.0.0.0:8000 \
    TRADELEDGER_FIXTURES=/opt/tradeledger/fixtures
VOLUME ["/data"]
EXPOSE 8000
# `tradeledger healthcheck` asks /healthz on TRADELEDGER_LISTEN (on loopback): the image
# needs no HTTP client of its own.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["tradeledger", "healthcheck"]
ENTRYPOINT ["tradeledger"]
CMD ["serve"]

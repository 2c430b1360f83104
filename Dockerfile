# mcp-gateway container image.
#
#   docker build -t mcp-gateway .
#   docker run -p 8080:8080 \
#     -v "$PWD/config.yaml:/app/config.yaml:ro" \
#     -e GOOGLE_CLIENT_ID=... -e GOOGLE_CLIENT_SECRET=... -e SESSION_SECRET=... \
#     mcp-gateway
#
# The image listens on 0.0.0.0 (MCP_GATEWAY_HOST) and layers /app/config.yaml over the
# defaults in /app/config/default.yaml. That mounted file must configure a real provider
# (google, github, okta, custom or oidc; see /app/config/*.yaml): the default `dev` provider lets
# anyone log in as anyone, so the gateway refuses it on a non-loopback host and the container
# would exit with code 2. Check a config without starting anything:
#   docker run --rm -v "$PWD/config.yaml:/app/config.yaml:ro" mcp-gateway check-config
#
# compose.yaml runs it with Redis and an example backend; scripts/container-smoke.sh builds
# this image and checks a running container (health, readiness, metadata, a 401).

FROM rust:1-slim-bookworm AS builder
WORKDIR /build
COPY Cargo.toml Cargo.lock ./
# Build settings (the allocator's defaults).
COPY .cargo ./.cargo
COPY src ./src
# Templates compiled into the binary (include_str!).
COPY static ./static
RUN cargo build --release --locked --bin mcp-gateway

FROM debian:bookworm-slim
# ca-certificates: TLS to the identity provider, Redis (rediss://) and Vault.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin gateway
WORKDIR /app
COPY --from=builder /build/target/release/mcp-gateway /usr/local/bin/mcp-gateway
COPY config ./config
COPY static ./static
ENV MCP_GATEWAY_HOST=0.0.0.0 \
    MCP_CONFIG_PATH=/app/config.yaml
USER 10001
EXPOSE 8080
# `healthcheck` asks GET /ready on the configured port (the image has no curl): unhealthy while
# storage does not answer or once a drain has begun. SIGTERM drains (runtime.shutdown_timeout).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["mcp-gateway", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["mcp-gateway"]

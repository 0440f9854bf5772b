# Multi-stage build: compile with the full Rust toolchain, run on a slim
# Debian with only the binary, as an unprivileged user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
# The console's templates (compiled in by askama) and embedded assets.
COPY templates ./templates
COPY assets ./assets
RUN cargo build --release --locked --bin tenant-jwt

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/tenant-jwt --shell /usr/sbin/nologin tenant-jwt \
 && install -d -o tenant-jwt -g tenant-jwt -m 0700 /var/lib/tenant-jwt
COPY --from=build /src/target/release/tenant-jwt /usr/local/bin/tenant-jwt
USER tenant-jwt
WORKDIR /var/lib/tenant-jwt
ENV TENANT_JWT_LISTEN=0.0.0.0:8080 \
    TENANT_JWT_MASTER_KEY_FILE=/var/lib/tenant-jwt/master.key
EXPOSE 8080
# The master key file lives here when TENANT_JWT_MASTER_KEY is not set: keep
# it on a volume, and back it up.
VOLUME ["/var/lib/tenant-jwt"]
# No curl in the slim image: bash's /dev/tcp is enough for a readiness probe.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=5 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["tenant-jwt"]
CMD ["serve"]

# syntax=docker/dockerfile:1
#
# wa-gateway container image: a Rust build stage, then a small Debian runtime running the binary
# as an unprivileged user, with its working directory /data as a volume.
#
# Build (BuildKit: Docker 23+ or `docker buildx build`; Podman/Buildah understand the cache mounts
# too, but need `--format docker` to keep the HEALTHCHECK, which the OCI image format lacks):
#   docker build -t wa-gateway .
#   podman build --format docker -t wa-gateway .
# Run on SQLite (database and media in the volume, as /data/data/gateway.db and /data/data/media):
#   docker run -d --name wa-gateway -p 127.0.0.1:3000:3000 -v wa-gateway-data:/data \
#     -e GATEWAY_SERVER__PUBLIC_URL=https://wa.example.com wa-gateway
#   docker logs wa-gateway   # the first start prints the generated admin token once
# Configuration: GATEWAY_<SECTION>__<KEY> variables, or a gateway.toml in /data (the working
# directory, read when present), or `serve --config FILE` with the file mounted anywhere.
# A bind mount instead of a named volume must be writable by uid 10001.
# compose.yaml runs it with PostgreSQL.

# The gateway's rust-version is 1.94; `1` is the newest 1.x. Pin it (e.g. 1.95) for repeatable builds.
ARG RUST_VERSION=1

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Only what the gateway crate compiles: the manifest and lock file; build.rs (it only tells cargo
# to rerun when migrations/ or the GATEWAY_TEST_* variables change, and the latter only matter for
# tests); gateway.toml (the defaults, embedded with include_str!); migrations/ (embedded by
# sqlx::migrate!); wit/ (the plugin worlds, read by wasmtime's bindgen! at compile time); src/;
# and benches/, because Cargo.toml names [[bench]] targets and cargo refuses a manifest whose
# bench files are missing, even when it builds only the binary. plugins/ (its own workspace, built
# to wasm32) and tests/ are not needed. No database is needed at build time: the queries are not
# checked at compile time (no sqlx::query! macros, no .sqlx/).
COPY Cargo.toml Cargo.lock build.rs gateway.toml ./
COPY benches benches
COPY migrations migrations
COPY wit wit
COPY src src
# The registry and the target directory live in BuildKit caches, so a rebuild after a source
# change recompiles only the gateway, not its several hundred dependencies. The cache is not part of the
# image, hence the copy out of it.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin wa-gateway \
    && install -D -m 0755 target/release/wa-gateway /out/wa-gateway

# The binary links only libc, libm and libgcc_s. bookworm-slim rather than distroless/cc: the
# HEALTHCHECK needs a shell (the binary has no health-check subcommand and the image has no curl),
# and bash's /dev/tcp is enough. ca-certificates: S3 media storage and other outbound TLS trust
# the system roots (rustls-native-certs).
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 10001 wa-gateway \
    && useradd --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin wa-gateway \
    && install -d -m 0700 -o 10001 -g 10001 /data
COPY --from=build /out/wa-gateway /usr/local/bin/wa-gateway

# Relative paths in the configuration (sqlite:data/gateway.db, data/media) resolve in /data, so
# the database, its lock file and the media folder land in the volume. A new named volume takes
# the directory's owner (10001) and mode from the image.
WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
ENV GATEWAY_SERVER__BIND=0.0.0.0:3000
EXPOSE 3000
# SIGTERM drains within [server] shutdown_grace (20 s by default): give `docker stop` more than its
# default 10 s (`--stop-timeout 30`, or stop_grace_period in compose.yaml).
STOPSIGNAL SIGTERM
# GET /healthz on the port of GATEWAY_SERVER__BIND, in bash only (/dev/tcp): healthy when the
# status line says 200.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${GATEWAY_SERVER__BIND##*:} && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r -t 4 status <&3 && [[ $status == 'HTTP/1.1 200'* ]]"]
ENTRYPOINT ["wa-gateway"]
CMD ["serve"]

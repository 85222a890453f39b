# syntax=docker/dockerfile:1
#
# One Dockerfile for the five deployable services. Build one image per
# service, choosing the binary with SERVICE:
#
#   docker build --build-arg SERVICE=task-api -t todo/task-api:dev .
#
# The builder stages do not depend on SERVICE, so building the five images in
# a row compiles the workspace once and reuses the cached layers (this is
# what scripts/deploy.sh does).
#
# Stages:
#   chef     Rust toolchain + cargo-chef (from crates.io)
#   planner  reduces the workspace to a dependency "recipe" (manifests + lock)
#   builder  compiles the dependencies from the recipe (cached until
#            Cargo.toml/Cargo.lock change), then the services in release mode
#   runtime  distroless (glibc, CA roots, no shell), non-root, one binary
#
# Needs no protoc: build.rs compiles proto/ with protox. Migrations under
# services/<name>/migrations are embedded at compile time (sqlx::migrate!),
# so they must stay in the build context (see .dockerignore).

# Tracks the newest stable 1.x on Debian 12, the same glibc as the runtime
# image; the workspace needs Rust >= 1.90 (edition 2024).
ARG RUST_VERSION=1
ARG CARGO_CHEF_VERSION=0.1.78

FROM rust:${RUST_VERSION}-bookworm AS chef
ARG CARGO_CHEF_VERSION
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY . .
# The recipe, and which packages ship: every folder under services/ is a
# service, and nothing else is.
RUN cargo chef prepare --recipe-path recipe.json && ls services > services.txt

FROM chef AS builder
COPY --from=planner /src/recipe.json /src/services.txt ./
# The protos ride along with the dependency layer: harmless if cargo-chef's
# skeleton stubs build.rs, and needed if it keeps it.
COPY proto proto
# The services' dependencies, release profile, with exactly the packages
# the build below names: cooking the whole workspace unifies features
# differently, and the build then compiled two dozen dependencies again
# (axum, tonic, sqlx, ...) on every change of the sources.
RUN cargo chef cook --release --recipe-path recipe.json $(sed 's/^/-p /' services.txt)
COPY . .
RUN cargo build --release --locked $(sed 's/^/-p /' services.txt) \
    && mkdir -p /out \
    && for bin in $(cat services.txt); do \
           cp "target/release/${bin}" /out/; \
       done

# The only stage that depends on SERVICE: picks one binary, and fails the
# build when SERVICE is missing or not one of the five.
FROM builder AS pick
ARG SERVICE
RUN test -n "${SERVICE}" || { echo "build with --build-arg SERVICE=<service name>" >&2; exit 1; }; \
    test -x "/out/${SERVICE}" || { echo "unknown SERVICE '${SERVICE}'; one of: $(ls /out)" >&2; exit 1; }; \
    cp "/out/${SERVICE}" /service

# Small and non-root: gcc runtime + glibc + CA certificates, user 65532.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ARG SERVICE
LABEL org.opencontainers.image.title="${SERVICE}" \
      org.opencontainers.image.description="event-driven Todo backend: ${SERVICE}"
COPY --from=pick /service /usr/local/bin/service
USER 65532:65532
ENV APP_HOST=0.0.0.0
ENTRYPOINT ["/usr/local/bin/service"]

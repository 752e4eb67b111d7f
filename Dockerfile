# The single-container deploy: build the binary, then run it in a slim image
# with Python and pytest (the embedded pool runs them) and tini as PID 1 so
# that orphaned test processes are reaped.
#
# The image serves on 0.0.0.0, so it starts with accounts (--auth local): until
# the first account exists it serves only the sign-in page and prints how to
# create one. In a running container (the database is found through
# TESTSCHEDULER_DATABASE below; this works while the server runs):
#
#   docker exec -it CONTAINER testscheduler users add admin --role admin
#
# prints the new admin's password once. More accounts, roles and API tokens:
# `testscheduler users --help`, `testscheduler tokens --help`, docs/accounts.md.
# Behind an SSO proxy, set TESTSCHEDULER_AUTH=proxy and
# TESTSCHEDULER_AUTH_PROXY_FROM=<the proxy's address> instead.
#
# With remote workers (--redis / TESTSCHEDULER_REDIS)
# the server and every worker need the same worker secret, given at run time and
# never baked into the image: TESTSCHEDULER_WORKER_SECRET (e.g. from an env file,
# `docker run --env-file testscheduler.env ...`, as compose.yaml does) or
# --worker-secret-file pointing at a mounted file. Without it `serve --redis`
# refuses to start. The tests never see it: no TESTSCHEDULER_* variable of the
# server or worker reaches a run.

# Build stage: Debian 12 (bookworm), the same C library as the runtime image.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY src ./src
COPY assets ./assets
COPY benches ./benches
COPY tests ./tests
RUN RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --locked --release --target x86_64-unknown-linux-gnu \
 && cp target/x86_64-unknown-linux-gnu/release/testscheduler /testscheduler

# Runtime stage: Python + pytest, tini, the binary, a volume for the database.
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && pip install --no-cache-dir pytest
COPY --from=build /testscheduler /usr/local/bin/testscheduler
COPY examples/demo/tests /project/tests
WORKDIR /project
VOLUME /data
ENV TESTSCHEDULER_BIND=0.0.0.0:8000 \
    TESTSCHEDULER_DATABASE=/data/testscheduler.db \
    TESTSCHEDULER_PROJECT_DIR=/project
EXPOSE 8000
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/testscheduler"]
CMD ["serve"]

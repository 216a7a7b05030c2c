# The image a KFP step runs in: the `baton` binary (its `runner --kfp` mode) and a Python for
# the handlers. Build it from the repository root:
#
#   docker build -f docker/runner.Dockerfile -t baton/runner:latest .
#
# then compile pipelines with `baton compile NAME --image baton/runner:latest` (or set the
# function's image to one built FROM this one with the handlers' requirements installed).
# Each step needs BATON_API (and BATON_TOKEN when the server has one) in its environment: the
# runner records its run on that server and pulls its code artifact from it at start-up.

FROM rust:1.89-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin baton

FROM python:3.11-slim-bookworm
COPY --from=build /src/target/release/baton /usr/local/bin/baton
# The runner's scratch folders and code cache.
ENV BATON_CACHE_DIR=/tmp/baton-cache
ENTRYPOINT ["baton"]

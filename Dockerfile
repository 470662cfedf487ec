# audiorec service image: a release build of the binary on a slim Debian base.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked && strip target/release/audiorec

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /data audiorec
COPY --from=build /src/target/release/audiorec /usr/local/bin/audiorec
USER audiorec
WORKDIR /data
ENV AUDIOREC_BIND=0.0.0.0:8080 \
    AUDIOREC_DATA=/data/dataset \
    RUST_LOG=info
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=300s CMD curl -fsS http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["audiorec"]
CMD ["serve"]

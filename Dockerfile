# syntax=docker/dockerfile:1.7
# One build, three small images: `make images` builds each target below.
# The runtime images are distroless (glibc, CA certificates, no shell, no
# package manager) and run as the non-root user 65532.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p tariff-service -p dispute-service -p dialogue-service \
 && mkdir -p /out \
 && cp target/release/tariff-service target/release/dispute-service target/release/dialogue-service /out/

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
ENV TRADEWATCH__SERVER__HOST=0.0.0.0 \
    TRADEWATCH__LOG__FORMAT=json
USER 65532:65532

FROM runtime AS tariff
COPY --from=build /out/tariff-service /usr/local/bin/tariff-service
EXPOSE 50052
ENTRYPOINT ["/usr/local/bin/tariff-service"]
CMD ["serve"]

FROM runtime AS dispute
COPY --from=build /out/dispute-service /usr/local/bin/dispute-service
EXPOSE 50051
ENTRYPOINT ["/usr/local/bin/dispute-service"]
CMD ["serve"]

FROM runtime AS dialogue
COPY --from=build /out/dialogue-service /usr/local/bin/dialogue-service
EXPOSE 50053
ENTRYPOINT ["/usr/local/bin/dialogue-service"]
CMD ["serve"]

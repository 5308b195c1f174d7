# syntax=docker/dockerfile:1.7
# One build, four small images: `make images` builds each target below.
# The runtime images are distroless (glibc, CA certificates, no shell, no
# package manager) and run as the non-root user 65532.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p tariff-service -p dispute-service -p dialogue-service -p relations-service \
 && mkdir -p /out \
 && cp target/release/tariff-service target/release/dispute-service target/release/dialogue-service \
       target/release/relations-service /out/

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
# OCI annotations (https://specs.opencontainers.org/image-spec/annotations/):
# the release passes VERSION, REVISION (the git commit), CREATED (RFC 3339)
# and SOURCE (the repository's URL).
ARG SOURCE=https://git.example.com/tradewatch/tradewatch
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.vendor="Tradewatch" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
# MIMALLOC_ALLOW_THP=0: no transparent huge pages for the allocator's
# arenas, even on nodes where THP is "always" (the memory limit counts them).
ENV TRADEWATCH__SERVER__HOST=0.0.0.0 \
    TRADEWATCH__LOG__FORMAT=json \
    MIMALLOC_ALLOW_THP=0
USER 65532:65532

FROM runtime AS tariff
LABEL org.opencontainers.image.title="tariff-service" \
      org.opencontainers.image.description="Tradewatch tariff service: measures and duties (gRPC :50052)"
COPY --from=build /out/tariff-service /usr/local/bin/tariff-service
EXPOSE 50052
ENTRYPOINT ["/usr/local/bin/tariff-service"]
CMD ["serve"]

FROM runtime AS dispute
LABEL org.opencontainers.image.title="dispute-service" \
      org.opencontainers.image.description="Tradewatch dispute service: trade disputes (gRPC :50051)"
COPY --from=build /out/dispute-service /usr/local/bin/dispute-service
EXPOSE 50051
ENTRYPOINT ["/usr/local/bin/dispute-service"]
CMD ["serve"]

FROM runtime AS dialogue
LABEL org.opencontainers.image.title="dialogue-service" \
      org.opencontainers.image.description="Tradewatch dialogue service: sessions and commitments (gRPC :50053)"
COPY --from=build /out/dialogue-service /usr/local/bin/dialogue-service
EXPOSE 50053
ENTRYPOINT ["/usr/local/bin/dialogue-service"]
CMD ["serve"]

FROM runtime AS relations
LABEL org.opencontainers.image.title="relations-service" \
      org.opencontainers.image.description="Tradewatch relations service: bilateral briefs and dispute dossiers, no database (gRPC :50054)"
COPY --from=build /out/relations-service /usr/local/bin/relations-service
EXPOSE 50054
ENTRYPOINT ["/usr/local/bin/relations-service"]
CMD ["serve"]

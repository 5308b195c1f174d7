# syntax=docker/dockerfile:1.7
# The four service images for teams that build with an engine and a registry
# (`make images-docker`, or a CI's docker build --target <service>). They hold
# what `make images` builds without one: the root filesystem that
# k8s/image/rootfs.sh makes from the Debian packages pinned in
# k8s/image/packages.lock (glibc, libgcc, CA certificates; no shell, no
# package manager), the service's binary in /usr/local/bin, user 65532.
# `make images-test` checks that both give the same files.
#
# The base images are named by tag here; a release pins them by digest
# (k8s/README.md, Releasing): --build-arg DEBIAN_IMAGE=debian:bookworm@sha256:…
# and RUST_IMAGE=rust:1.95-bookworm@sha256:…, the digests `docker buildx
# imagetools inspect` prints for the tags.
ARG DEBIAN_IMAGE=debian:bookworm
ARG RUST_IMAGE=rust:1.95-bookworm

FROM ${DEBIAN_IMAGE} AS rootfs
COPY k8s/image/rootfs.sh k8s/image/packages.lock /image/
RUN bash /image/rootfs.sh /rootfs

FROM scratch AS runtime
COPY --from=rootfs /rootfs/ /
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
      org.opencontainers.image.base.name="scratch" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
# MIMALLOC_ALLOW_THP=0: no transparent huge pages for the allocator's
# arenas, even on nodes where THP is "always" (the memory limit counts them).
ENV PATH=/usr/local/bin:/usr/bin:/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    TRADEWATCH__SERVER__HOST=0.0.0.0 \
    TRADEWATCH__LOG__FORMAT=json \
    MIMALLOC_ALLOW_THP=0
USER 65532:65532
WORKDIR /home/nonroot

# The binaries, built as `make images` builds them: --locked, with the
# source and registry paths remapped and SOURCE_DATE_EPOCH set, so the same
# commit gives the same bytes.
FROM ${RUST_IMAGE} AS build
# The commit's time (git log -1 --format=%ct): what the C compiler puts for
# __DATE__ and __TIME__ (the bundled SQLite uses them), as `make images` does.
ARG SOURCE_DATE_EPOCH=0
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    RUSTFLAGS="--remap-path-prefix=/src=/src --remap-path-prefix=/usr/local/cargo=/usr/local/cargo" \
    CARGO_TARGET_DIR=/src/target/image \
    cargo build --release --locked -p tariff-service -p dispute-service -p dialogue-service -p relations-service \
 && mkdir -p /out \
 && cp target/image/release/tariff-service target/image/release/dispute-service \
       target/image/release/dialogue-service target/image/release/relations-service /out/

FROM runtime AS tariff
LABEL org.opencontainers.image.title="tariff-service" \
      org.opencontainers.image.description="Tradewatch tariff service: measures and duties (gRPC :50052)"
COPY --from=build /out/tariff-service /usr/local/bin/tariff-service
EXPOSE 50052 51052
ENTRYPOINT ["/usr/local/bin/tariff-service"]
CMD ["serve"]

FROM runtime AS dispute
LABEL org.opencontainers.image.title="dispute-service" \
      org.opencontainers.image.description="Tradewatch dispute service: trade disputes (gRPC :50051)"
COPY --from=build /out/dispute-service /usr/local/bin/dispute-service
EXPOSE 50051 51051
ENTRYPOINT ["/usr/local/bin/dispute-service"]
CMD ["serve"]

FROM runtime AS dialogue
LABEL org.opencontainers.image.title="dialogue-service" \
      org.opencontainers.image.description="Tradewatch dialogue service: sessions and commitments (gRPC :50053)"
COPY --from=build /out/dialogue-service /usr/local/bin/dialogue-service
EXPOSE 50053 51053
ENTRYPOINT ["/usr/local/bin/dialogue-service"]
CMD ["serve"]

FROM runtime AS relations
LABEL org.opencontainers.image.title="relations-service" \
      org.opencontainers.image.description="Tradewatch relations service: bilateral briefs and dispute dossiers, no database (gRPC :50054)"
COPY --from=build /out/relations-service /usr/local/bin/relations-service
EXPOSE 50054 51054
ENTRYPOINT ["/usr/local/bin/relations-service"]
CMD ["serve"]

# The image scripts/image.sh builds without a daemon (buildah), built with
# Docker instead; the final stage is the same (tests/it/image.rs compares them):
#
#   docker build --build-arg REVISION=$(git rev-parse --short=12 HEAD) -t vouch .
#
# .dockerignore leaves .git out, so the revision must come in as a build
# argument; the build stops without one rather than label "unknown".
# The build stage is pinned by digest: the multi-platform index digest of
# rust:1.89-bookworm. It was not pulled here (the project's machines have no
# container engine and no registry access; the tests build the same image
# with scripts/image.sh); it was checked only against public Dockerfiles
# and scripts of unrelated projects that pin the same tag (and
# rust:1.89.0-bookworm) to this same digest. Verify before relying on it:
#   crane digest rust:1.89-bookworm   (or: docker buildx imagetools inspect)
FROM rust:1.89-bookworm@sha256:948f9b08a66e7fe01b03a98ef1c7568292e07ec2e4fe90d88c07bb14563c84ff AS build
ARG REVISION
WORKDIR /src
COPY . .
RUN test -n "$REVISION" || { echo 'pass --build-arg REVISION=$(git rev-parse --short=12 HEAD)' >&2; exit 1; }
RUN VOUCH_REVISION="$REVISION" cargo build --release --locked --bin vouch \
 && bash scripts/image.sh --binary target/release/vouch --revision "$REVISION" --rootfs /layers

FROM scratch
ARG VERSION=0.1.0
ARG REVISION
COPY --from=build /layers/base/ /
COPY --from=build /layers/bin/ /
USER 65532:65532
EXPOSE 9847
ENTRYPOINT ["/usr/local/bin/vouch"]
CMD ["serve", "--config", "/usr/share/vouch/demo/vouch.yaml", "--web.listen-address", "0.0.0.0:9847"]
LABEL org.opencontainers.image.title="vouch" \
      org.opencontainers.image.description="Deployment checklist items as scheduled checks, Prometheus metrics and a deployment gate" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

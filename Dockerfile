# Multi-stage build of a small non-root image. Not built on the project's
# own machines (they have no container engine); conventional on purpose.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin vouch

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/vouch /usr/local/bin/vouch
USER 65532:65532
EXPOSE 9847
ENTRYPOINT ["/usr/local/bin/vouch"]
CMD ["serve", "--config", "/etc/vouch/vouch.yaml"]

# Simian as a container image: FROM scratch, the statically linked binary, a non-root user.
#
# Nothing is pulled, not even a build image. Build the binary on the host, then the image
# (docs/deploy.md):
#
#   RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked \
#       --target x86_64-unknown-linux-gnu -p simian
#   docker build -t simian .
#
# Another build of the binary: --build-arg BINARY=PATH (inside the build context).
FROM scratch
ARG BINARY=target/x86_64-unknown-linux-gnu/release/simian
COPY ${BINARY} /simian
COPY deploy/container/simian.toml /etc/simian/simian.toml
# The state folder (the default SQLite store), writable by the image's user.
COPY --chown=65532:65532 deploy/container/state/ /var/lib/simian/
WORKDIR /var/lib/simian
USER 65532:65532
ENV SIMIAN_CONFIG=/etc/simian/simian.toml
EXPOSE 8080
ENTRYPOINT ["/simian"]
CMD ["serve"]

# dingtail in a container: one self-contained binary on an empty image, running as an
# unprivileged user, with its state (the checkpoint) on a volume.
#
# Build the binary first, then the image (docker, podman and buildah all read this file):
#
#   contrib/build-static.sh        # → target/static/x86_64-unknown-linux-musl/release/dingtail
#   podman build -t dingtail .     # or: docker build -t dingtail .
#
#   podman run --rm -e DINGTALK_TOKEN -e DINGTALK_SECRET \
#     -v /var/log/app:/logs:ro -v ./dingtail.yaml:/etc/dingtail/dingtail.yaml:ro \
#     -v dingtail-state:/state dingtail run -c /etc/dingtail/dingtail.yaml '/logs/*.log'
#
# The binary is built outside the image on purpose: `FROM scratch` needs nothing to be pulled
# from a registry (a rust: builder image is slow or blocked where many of our users are), and
# the image holds exactly the tested binary. tests/packaging.rs builds and runs this image
# with podman.
FROM scratch

# HTTPS to DingTalk needs CA certificates; an empty image has none. build-static.sh copies
# the build host's bundle next to the binary.
COPY target/static/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY target/static/x86_64-unknown-linux-musl/release/dingtail /usr/local/bin/dingtail
COPY --chown=65532:65532 contrib/container/state/ /state/

ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    STATE_DIRECTORY=/state
USER 65532:65532
VOLUME ["/state"]
ENTRYPOINT ["/usr/local/bin/dingtail"]
CMD ["run", "--help"]

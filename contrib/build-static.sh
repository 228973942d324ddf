#!/usr/bin/env bash
# Builds dingtail as one self-contained Linux executable: statically linked against musl, no
# shared libraries, no glibc version dependency, runs on any x86_64 Linux (and in an image
# `FROM scratch`). Prints its path:
#
#   target/static/x86_64-unknown-linux-musl/release/dingtail
#
# Why musl rather than glibc with `-C target-feature=+crt-static`: a static glibc still loads
# NSS modules at run time for name lookups (getaddrinfo), so it resolves nothing in an empty
# image and warns at link time; musl's resolver is built in. The C parts (ring's assembly and
# C) need musl's gcc wrapper: Debian/Ubuntu `apt-get install musl-tools`.
#
# A separate target directory keeps these release artifacts from invalidating the debug
# builds that `cargo test` uses.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi
if ! command -v x86_64-linux-musl-gcc >/dev/null && ! command -v musl-gcc >/dev/null; then
    echo "build-static.sh: musl's gcc wrapper is missing (Debian/Ubuntu: apt-get install musl-tools)" >&2
    exit 1
fi
# Symbols stripped: a third of the size, and the image is for running, not debugging.
CARGO_PROFILE_RELEASE_STRIP=symbols \
    cargo build --release --locked --target "$target" --target-dir target/static >&2
# The CA bundle the container image ships (Dockerfile), from this machine.
bundle=/etc/ssl/certs/ca-certificates.crt
if [ ! -s "$bundle" ]; then
    echo "build-static.sh: no CA bundle at $bundle (Debian/Ubuntu: apt-get install ca-certificates)" >&2
    exit 1
fi
cp "$bundle" target/static/ca-certificates.crt
echo "target/static/$target/release/dingtail"

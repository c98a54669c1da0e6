#!/usr/bin/env bash
# Starts the twin of the broxiva platform (tests/support/twin) and keeps it
# running for people to look at: it prints the `vouch check` / `vouch serve`
# command line that points the shipped config at it (only --connect-to,
# --map-path, --kubeconfig and SSL_CERT_FILE), then waits for Ctrl-C.
#
#   scripts/twin.sh                  # after scripts/test.sh installed the tools
#
# The twin is the healthy-run test held open (TWIN_HOLD=1); Ctrl-C stops it
# and every server it started.
set -euo pipefail
cd "$(dirname "$0")/.."
TWIN_HOLD=1 exec cargo test --locked --test it twin::the_healthy_twin -- --nocapture

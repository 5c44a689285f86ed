#!/usr/bin/env bash
# The test command of {{name}}: every test, then, when a backend is in the
# environment (REDIS_EVENT_SOURCE_ENDPOINT), the producer and the consumer
# as two processes on it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace
if [ -n "${REDIS_EVENT_SOURCE_ENDPOINT:-}" ]; then
  cargo run --quiet --bin {{name}}-producer -- 2
  cargo run --quiet --bin {{name}}-consumer -- 2
fi

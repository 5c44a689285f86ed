#!/usr/bin/env bash
# The test command of {{name}}: every test, then, when its server is in the
# environment ({{servers_hint}}), the producer and the consumer as two
# processes on it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace
{{server_steps}}

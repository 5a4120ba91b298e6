#!/usr/bin/env bash
# Installs the OpenID provider used by the JWT tests (tests/oidc/node_modules).
# Idempotent: does nothing when node_modules already matches package-lock.json.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v npm >/dev/null 2>&1; then
  echo "tests/oidc/setup.sh: npm not found (node >= 20 is required for the OpenID provider tests)" >&2
  exit 1
fi
stamp=node_modules/.ruleauth-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d node_modules/oidc-provider ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"

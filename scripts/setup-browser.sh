#!/usr/bin/env bash
# Installs Debian's chromium, which the browser tests (test/browser/) drive through playwright-core. Runs before
# every `npm test`, so it does nothing when chromium is already there. playwright-core downloads no browser of its
# own: the tests use this one (AFLUENTE_CHROMIUM names another).
set -euo pipefail

if [[ -n "${AFLUENTE_CHROMIUM:-}" ]] || command -v chromium >/dev/null 2>&1; then
  exit 0
fi
echo 'afluente: installing chromium for the browser tests (apt-get install chromium)' >&2
sudo=""
[[ "$(id -u)" == 0 ]] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -q --no-install-recommends chromium >/dev/null ||
  { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q --no-install-recommends chromium >/dev/null; }

#!/usr/bin/env bash
# Installs the Python tooling the tests use (requirements.txt) into .venv. Runs before every `npm test`, so it
# does nothing when the venv already matches requirements.txt: the hash of the file it last installed is kept
# in .venv/.requirements.sha256 (with the embedded engine's spark/requirements-embedded.txt, which it includes).
set -euo pipefail
cd "$(dirname "$0")/.."

# The local load step reaches PostgreSQL through Debian's JDBC driver (the EMR runtime ships Redshift's).
jdbc=/usr/share/java/postgresql.jar
if [[ ! -f "$jdbc" ]]; then
  echo 'afluente: installing the PostgreSQL JDBC driver (apt-get install libpostgresql-jdbc-java)' >&2
  sudo=""
  [[ "$(id -u)" == 0 ]] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q libpostgresql-jdbc-java >/dev/null ||
    { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q libpostgresql-jdbc-java >/dev/null; }
fi

venv=.venv
stamp="$venv/.requirements.sha256"
want="$(cat requirements.txt spark/requirements-embedded.txt | sha256sum | cut -d' ' -f1)"

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi

echo 'afluente: installing the Python test tools into .venv (pip install -r requirements.txt)' >&2
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
# This machine's pip config names local mirror folders that may not exist; pip warns about each one on every
# package. Those lines are noise, so they are dropped; every other line, and pip's exit code, get through.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt 2>&1 |
  { grep -v "^WARNING: Location 'file://.*' is ignored" || true; }
echo "$want" >"$stamp"

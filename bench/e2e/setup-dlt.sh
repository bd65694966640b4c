#!/usr/bin/env bash
# Installs dlt (the e2e benchmark's baseline) into its own venv, bench/.venv-dlt, kept apart from the project's
# .venv so dlt's dependencies never meet the test tools'. Does nothing when the venv already holds what
# bench/e2e/requirements.txt asks for: the hash of the file it last installed is kept in the venv.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=bench/.venv-dlt
reqs=bench/e2e/requirements.txt
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$reqs" | cut -d' ' -f1)"

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi

echo "bench e2e: installing dlt into $venv (pip install -r $reqs)" >&2
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
# As in scripts/setup-python.sh: pip warns about each missing local mirror folder on every package; those lines
# are dropped, every other line and pip's exit code get through.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs" 2>&1 |
  { grep -v "^WARNING: Location 'file://.*' is ignored" || true; }
echo "$want" >"$stamp"

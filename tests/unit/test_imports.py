"""The proxy imports none of the operator's dependencies: each would cost every sidecar memory and start-up.

redis-py alone was 7.4 MiB of RSS and 68 ms of import per proxy process; the proxy speaks to
Redis through hiredis on its own connection (``limits/pipe.py``, ``limits/batch.py``).
"""

from __future__ import annotations

import subprocess
import sys

OPERATOR_ONLY = ("redis", "kopf", "kubernetes")

PROGRAM = f"""
import pkgutil, sys
import sluice_proxy
for module in pkgutil.walk_packages(sluice_proxy.__path__, "sluice_proxy."):
    if module.name != "sluice_proxy.__main__":
        __import__(module.name)
found = sorted(m for m in sys.modules if m.split(".")[0] in {OPERATOR_ONLY!r})
print(" ".join(found))
"""


def test_every_proxy_module_imports_without_the_operators_dependencies() -> None:
    imported = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True)
    assert imported.stdout.split() == []

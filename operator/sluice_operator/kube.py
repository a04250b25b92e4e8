"""The operator's own Kubernetes API client (kopf's client serves only kopf's handlers).

Uses the identity kopf logged in with (see ``handlers.login``), so both speak as one user.
Every call returns plain JSON; API errors become :class:`ApiError` with the status code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import kopf

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    def __init__(self, status: int, method: str, path: str, message: str) -> None:
        self.status = status
        super().__init__(f"{method} {path}: HTTP {status}: {message}")


def core_path(namespace: str, plural: str, name: str | None = None) -> str:
    return f"/api/v1/namespaces/{quote(namespace)}/{plural}" + (f"/{quote(name)}" if name else "")


def group_path(group: str, version: str, namespace: str, plural: str, name: str | None = None) -> str:
    base = f"/apis/{group}/{version}/namespaces/{quote(namespace)}/{plural}"
    return base + (f"/{quote(name)}" if name else "")


class Kube:
    """A small async client; :meth:`use` (re)binds it to a login."""

    def __init__(self) -> None:
        self._info: kopf.ConnectionInfo | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ready = asyncio.Event()

    def use(self, info: kopf.ConnectionInfo) -> None:
        self._info = info
        old, self._session = self._session, None
        if old is not None:
            # The old session may still serve requests in flight; close it once they are done.
            asyncio.get_running_loop().call_later(30, lambda: asyncio.ensure_future(old.close()))
        self._ready.set()

    def _client(self) -> tuple[aiohttp.ClientSession, kopf.ConnectionInfo]:
        if self._info is None:
            raise RuntimeError("Kube.use() was not called: the operator has not logged in yet")
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self._info.as_ssl_context(), limit=16)
            self._session = aiohttp.ClientSession(
                base_url=self._info.server.rstrip("/"),
                connector=connector,
                headers=self._info.as_http_headers(),
                timeout=aiohttp.ClientTimeout(total=60),
            )
        return self._session, self._info

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> JSON:
        await self._ready.wait()
        session, _ = self._client()
        url = path + (f"?{urlencode(query)}" if query else "")
        headers = {"Content-Type": content_type} if body is not None else {}
        async with session.request(method, url, json=body, headers=headers) as response:
            if response.status >= 400:
                try:
                    message = str((await response.json()).get("message", ""))
                except (aiohttp.ContentTypeError, ValueError):
                    message = (await response.text())[:500]
                raise ApiError(response.status, method, path, message)
            result: JSON = await response.json()
            return result

    async def get(self, path: str) -> JSON | None:
        """The object at ``path``, or None if it does not exist."""
        try:
            return await self.request("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(
        self, path: str, *, label_selector: str | None = None, field_selector: str | None = None
    ) -> list[JSON]:
        """Every item of a collection, paging through it 500 at a time."""
        items: list[JSON] = []
        query = {"limit": "500"}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        while True:
            page = await self.request("GET", path, query=query)
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            query = {**query, "continue": token}

    async def create(self, path: str, body: JSON) -> JSON:
        return await self.request("POST", path, body=body)

    async def replace(self, path: str, body: JSON) -> JSON:
        return await self.request("PUT", path, body=body)

    async def merge_patch(self, path: str, patch: JSON) -> JSON:
        return await self.request("PATCH", path, body=patch, content_type=MERGE_PATCH)

    async def delete(self, path: str) -> bool:
        """Delete ``path``; False if it was already gone."""
        try:
            await self.request("DELETE", path)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

"""google-cloud I/O. Clients are built here and nowhere else, lazily (importing google.cloud is slow).

Cloud Storage: the client honours STORAGE_EMULATOR_HOST (e.g. `http://127.0.0.1:4443`); when it is set,
the client talks to that endpoint with anonymous credentials. Tests point it at a local fake of the JSON
API; users can point it at an emulator or a staging proxy.
"""

from __future__ import annotations

from typing import Any


def storage_client(project: str | None = None, *, max_pool_connections: int = 10) -> Any:
    """A google.cloud.storage.Client whose HTTP pool holds `max_pool_connections` connections.

    requests' default pool keeps 10 connections per host: parallel transfers beyond that would open and
    drop a connection per request.
    """
    from google.cloud import storage
    from requests.adapters import HTTPAdapter

    client = storage.Client(project=project)
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max_pool_connections)
    client._http.mount("https://", adapter)
    client._http.mount("http://", adapter)
    return client

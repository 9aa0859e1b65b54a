"""The one way to reach the object store: a minio client for the settings' endpoint.

Callers choose timeouts, the client's own retries and the connection pool size (the
uploader, the worker, the API and the backup tool each need different ones); the endpoint,
credentials, region and TLS verification come from here alone.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from piaoxi.settings import Settings

if TYPE_CHECKING:
    import urllib3
    from minio import Minio


def s3_client(
    settings: Settings,
    *,
    connect_timeout: float = 5.0,
    read_timeout: float = 60.0,
    retries: urllib3.Retry | None = None,
    max_connections: int = 10,
) -> Minio:
    """A thread-safe minio client. `retries` None = minio's own policy (5 quick retries on
    5xx); callers with their own backoff pass `Retry(total=0)`. Endpoints may be given with
    or without a scheme."""
    import certifi
    import urllib3
    from minio import Minio

    url = urlsplit(settings.s3_endpoint)
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        retries=retries
        or urllib3.Retry(total=5, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
        maxsize=max_connections,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
    )
    return Minio(
        url.netloc or url.path,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        secure=url.scheme == "https",
        region=settings.s3_region,
        http_client=http,
    )

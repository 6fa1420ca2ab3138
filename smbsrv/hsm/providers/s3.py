"""The `s3` provider: content kept as objects in any S3-compatible store (AWS, MinIO, Ceph RGW, SeaweedFS).

Client library: obstore (Python bindings of the Rust `object_store` crate), chosen over boto3 because
- data stays in Rust-owned buffers handed over through the buffer protocol: a 1 GiB hydration is written to
  the file from those buffers without a copy through Python bytes, and the GIL is released during transfers,
  which matters on a server that keeps serving other clients from the same process meanwhile;
- ranged GETs, streaming GETs with a minimum chunk size, and multipart PUT from a file object are one call
  each, with retries, timeouts and connect timeouts set in one place;
- it imports in milliseconds and has no dependencies (botocore brings a large data tree and a slow import).
boto3 is more widely deployed and has more knobs (SSE-C, STS); neither matters for a content store that only
needs GET/PUT/HEAD/DELETE. It is the `hsm-s3` extra of pyproject.toml.

Credentials: the standard AWS variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) of the
server's environment, else a credentials file (`hsm_s3_credentials_file`, TOML with access_key_id and
secret_access_key, readable by the server only), else unsigned requests (a store that allows anonymous
access). The config file never holds a secret.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from smbsrv.hsm.providers import CHUNK_BYTES, ProviderError, ProviderUnavailable, log_request

_CONNECT_TIMEOUT = timedelta(seconds=5)
# A whole 1 GiB object must fit in one request's time, even over a slow link; a stalled transfer is caught by
# the read timeout instead (no byte for that long). The health check is one small request: a short limit.
_REQUEST_TIMEOUT = timedelta(hours=1)
_STALL_TIMEOUT = timedelta(seconds=30)
_HEALTH_TIMEOUT = timedelta(seconds=5)
_PART_BYTES = 16 * 1024 * 1024


def load_credentials(path: str) -> dict[str, str]:
    if not path:
        return {}
    with open(path, "rb") as file:
        data = tomllib.load(file)
    keys = ("access_key_id", "secret_access_key", "session_token")
    return {key: str(data[key]) for key in keys if key in data}


class S3Provider:
    kind = "s3"

    def __init__(self, provider_id: str, *, endpoint: str, bucket: str, region: str, prefix: str,
                 credentials_file: str = "") -> None:
        import obstore  # the optional extra: imported only by shares that use it
        from obstore.store import S3Store

        self.provider_id = provider_id
        self.bucket = bucket
        self.prefix = prefix
        self._obstore = obstore
        from obstore import exceptions

        self._exceptions = exceptions
        config: dict[str, Any] = {"region": region or "us-east-1"}
        if endpoint:
            config["endpoint"] = endpoint
            config["virtual_hosted_style_request"] = False
        credentials = load_credentials(credentials_file)
        if not credentials and os.environ.get("AWS_ACCESS_KEY_ID"):
            credentials = {"access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
                           "secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY", "")}
            if os.environ.get("AWS_SESSION_TOKEN"):
                credentials["session_token"] = os.environ["AWS_SESSION_TOKEN"]
        if credentials:
            config.update(credentials)
        else:
            config["skip_signature"] = True
        client_options: Any = {"allow_http": endpoint.startswith("http://"), "connect_timeout": _CONNECT_TIMEOUT,
                               "timeout": _REQUEST_TIMEOUT, "read_timeout": _STALL_TIMEOUT}
        # A provider that is down must answer the client soon (it sees CLOUD_FILE_PROVIDER_NOT_RUNNING), not
        # after minutes of backoff: two retries within ten seconds.
        retry: Any = {"max_retries": 2, "retry_timeout": timedelta(seconds=10),
                      "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=2)}}
        # The store's option types are TypedDicts; these dicts are built key by key above.
        self._store = S3Store(bucket, config=config, client_options=client_options,  # type: ignore[arg-type]
                              retry_config=retry)
        self._health_store = S3Store(bucket, config=config,  # type: ignore[arg-type]
                                     client_options={**client_options, "timeout": _HEALTH_TIMEOUT},
                                     retry_config={"max_retries": 0})

    def _path(self, key: str) -> str:
        if not key or "/" in key:
            raise ProviderError(f"bad object key {key!r}")
        return f"{self.prefix}{key}"

    def _translate(self, exc: Exception, key: str) -> Exception:
        exceptions = self._exceptions
        if isinstance(exc, FileNotFoundError | exceptions.NotFoundError):
            return ProviderError(f"object {key} not found in bucket {self.bucket}")
        if isinstance(exc, exceptions.PermissionDeniedError | exceptions.UnauthenticatedError
                      | exceptions.PreconditionError | exceptions.InvalidPathError):
            return ProviderError(f"s3 {self.bucket}/{key}: {exc}")
        # Connection refused, timeouts, 5xx after retries: the store is not reachable.
        return ProviderUnavailable(0, f"s3 {self.bucket}: {str(exc).splitlines()[0] if str(exc) else exc!r}")

    def fetch_range(self, key: str, offset: int, length: int) -> bytes:
        log_request(self, "get-range", key, offset, length)
        try:
            return bytes(self._obstore.get_range(self._store, self._path(key), start=offset, length=length))
        except Exception as exc:  # noqa: BLE001  (obstore's errors become the provider's two kinds)
            raise self._translate(exc, key) from None

    def fetch(self, key: str, size: int) -> Iterator[bytes]:
        log_request(self, "get", key, 0, size)
        try:
            result = self._obstore.get(self._store, self._path(key))
            # Bytes objects support the buffer protocol: the caller pwrites them without a copy.
            yield from result.stream(min_chunk_size=CHUNK_BYTES)
        except (ProviderError, ProviderUnavailable):
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, key) from None

    def store(self, key: str, fd: int, size: int) -> str:
        log_request(self, "put", key, 0, size)
        with os.fdopen(os.dup(fd), "rb", buffering=0) as source:
            source.seek(0)
            try:
                result = self._obstore.put(self._store, self._path(key), source, chunk_size=_PART_BYTES,
                                           max_concurrency=4)
            except Exception as exc:  # noqa: BLE001
                raise self._translate(exc, key) from None
        return str(result.get("version") or result.get("e_tag") or "")

    def stat(self, key: str) -> tuple[int, str] | None:
        log_request(self, "head", key)
        try:
            meta = self._obstore.head(self._store, self._path(key))
        except Exception as exc:  # noqa: BLE001
            translated = self._translate(exc, key)
            if isinstance(translated, ProviderError) and "not found" in str(translated):
                return None
            raise translated from None
        return int(meta["size"]), str(meta.get("version") or meta.get("e_tag") or "")

    def delete(self, key: str) -> None:
        log_request(self, "delete", key)
        try:
            self._obstore.delete(self._store, self._path(key))
        except Exception as exc:  # noqa: BLE001
            translated = self._translate(exc, key)
            if not (isinstance(translated, ProviderError) and "not found" in str(translated)):
                raise translated from None

    def health(self) -> None:
        # A HEAD of a key that never exists: "not found" proves the store answers and the bucket is there.
        try:
            self._obstore.head(self._health_store, f"{self.prefix}.smbsrv-health")
        except Exception as exc:  # noqa: BLE001
            translated = self._translate(exc, ".smbsrv-health")
            if isinstance(translated, ProviderUnavailable):
                raise translated from None

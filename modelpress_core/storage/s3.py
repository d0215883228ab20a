"""The S3-compatible artifact store (AWS S3, MinIO, Ceph RGW, moto…), through boto3.

Credentials come from boto3's standard chain: ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``
(/ ``AWS_SESSION_TOKEN``), ``AWS_PROFILE``, an instance or task role. The bucket must exist.

Atomicity: S3 makes an object visible only when its PUT, or its multipart upload's
CompleteMultipartUpload, succeeds; a failed upload is aborted (s3transfer does that), so no reader
ever sees half an object and a failed write leaves nothing. Objects are keyed
``<prefix><job_id>/<area>/<name>``; their sha256 lives in the job record.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Iterator

from modelpress_core.errors import Unavailable
from modelpress_core.storage.artifacts import AREAS, CHUNK, ArtifactStore, HashingReader, check_name, missing

NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


class S3ArtifactStore(ArtifactStore):
    kind = "s3"

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None, region: str | None = None,
                 multipart_bytes: int = 64 * 1024 * 1024):
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.bucket, self.prefix = bucket, prefix
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region or None,
            config=Config(
                retries={"max_attempts": 5, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
                s3={"addressing_style": "path"} if endpoint_url else {},
            ),
        )
        # one thread: the hashing reader needs sequential reads. Above multipart_bytes, a multipart upload
        # (parts of that size, at least S3's 5 MiB minimum), completed only after its last part.
        part = max(multipart_bytes, 5 * 1024 * 1024)
        self.transfer = TransferConfig(multipart_threshold=multipart_bytes, multipart_chunksize=part, use_threads=False)

    def key(self, job_id: str, area: str, name: str) -> str:
        check_name(job_id, area, name)
        return f"{self.prefix}{job_id}/{area}/{name}"

    def _job_prefix(self, job_id: str, area: str | None = None) -> str:
        check_name(job_id, area or "inputs", "x")
        return f"{self.prefix}{job_id}/" + (f"{area}/" if area else "")

    def _error(self, exc: Exception, job_id: str, area: str, name: str) -> Exception:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code")) in NOT_FOUND:
            return missing(job_id, area, name)
        return Unavailable(f"the artifact store (S3 bucket {self.bucket!r}) failed: {type(exc).__name__}: {exc}")

    def put_stream(self, job_id: str, area: str, name: str, source: BinaryIO) -> tuple[int, str]:
        key = self.key(job_id, area, name)
        reader = HashingReader(source)
        try:
            self.client.upload_fileobj(reader, self.bucket, key, Config=self.transfer)
        except OSError:
            raise  # the source failed: nothing was stored
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc, job_id, area, name) from exc
        return reader.size, reader.digest.hexdigest()

    def _get(self, job_id: str, area: str, name: str) -> dict:
        try:
            key = self.key(job_id, area, name)
        except ValueError:
            raise missing(job_id, area, name) from None
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)
        except Exception as exc:  # noqa: BLE001 - mapped to ArtifactNotFound or Unavailable
            raise self._error(exc, job_id, area, name) from exc

    def open(self, job_id: str, area: str, name: str) -> BinaryIO:
        return self._get(job_id, area, name)["Body"]

    def stream(self, job_id: str, area: str, name: str) -> tuple[int, Iterator[bytes]]:
        response = self._get(job_id, area, name)
        body = response["Body"]

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(CHUNK)
            finally:
                body.close()

        return int(response["ContentLength"]), chunks()

    def size(self, job_id: str, area: str, name: str) -> int:
        try:
            key = self.key(job_id, area, name)
        except ValueError:
            raise missing(job_id, area, name) from None
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except Exception as exc:  # noqa: BLE001
            raise self._error(exc, job_id, area, name) from exc

    def fetch(self, job_id: str, area: str, name: str, workdir: Path) -> Path:
        target = Path(workdir) / "fetched" / area / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.client.download_file(self.bucket, self.key(job_id, area, name), str(target), Config=self.transfer)
        except Exception as exc:  # noqa: BLE001
            target.unlink(missing_ok=True)
            raise self._error(exc, job_id, area, name) from exc
        return target

    def _keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return keys

    def list(self, job_id: str) -> list[str]:
        prefix = self._job_prefix(job_id)
        found = (k[len(prefix):] for k in self._keys(prefix))
        return sorted(k for k in found if k.split("/", 1)[0] in AREAS)

    def _delete_prefix(self, prefix: str) -> None:
        keys = self._keys(prefix)
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start:start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def remove_area(self, job_id: str, area: str) -> None:
        self._delete_prefix(self._job_prefix(job_id, area))

    def remove_job(self, job_id: str) -> None:
        self._delete_prefix(self._job_prefix(job_id))

    def check(self) -> None:
        self.client.head_bucket(Bucket=self.bucket)

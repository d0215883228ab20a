"""A real S3 endpoint for the integration tier: a ``moto.server`` process on a free loopback port."""

from __future__ import annotations

import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from modelpress.redis_server import free_port
from modelpress.stack import Child, tail

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "modelpress-test", "AWS_SECRET_ACCESS_KEY": "modelpress-test-secret",
               "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class S3Server:
    child: Child
    endpoint: str

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def new_bucket(self) -> str:
        name = f"mp-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def env(self, bucket: str, prefix: str = "modelpress/") -> dict[str, str]:
        """The settings (and AWS credentials) that point modelpress at ``bucket`` here."""
        return {**CREDENTIALS, "MODELPRESS_ARTIFACT_STORE": "s3", "MODELPRESS_S3_BUCKET": bucket,
                "MODELPRESS_S3_PREFIX": prefix, "MODELPRESS_S3_ENDPOINT_URL": self.endpoint,
                "MODELPRESS_S3_REGION": "us-east-1"}

    def stop(self) -> None:
        self.child.stop(timeout=5)


def start_s3_server(log_dir: Path, timeout: float = 60) -> S3Server:
    port = free_port()
    child = Child("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                  Path(log_dir) / "moto.log", {**os.environ, **CREDENTIALS})
    child.start()
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"moto.server exited:\n{tail(child.log_path)}")
        try:
            httpx.get(endpoint + "/moto-api/", timeout=1)
            return S3Server(child, endpoint)
        except httpx.HTTPError:
            time.sleep(0.2)
    child.stop(timeout=5)
    raise RuntimeError(f"moto.server did not answer within {timeout}s:\n{tail(child.log_path)}")

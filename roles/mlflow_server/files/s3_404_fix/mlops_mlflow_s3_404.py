"""MLflow's S3 artifact repository, answering a missing file with "does not exist".

Installed by the mlops.mlflow collection (role mlflow_server, variable
mlflow_server_s3_404_fix) into the server's venv, where it takes the ``s3`` scheme
through the ``mlflow.artifact_repository`` entry point group: mlflow registers its built-in
repositories first and the entry points after them, so this class replaces the built-in one.

Why: MLflow's S3ArtifactRepository lets botocore's 404 escape from a download, and
``mlflow server --serve-artifacts`` answers it with 500 INTERNAL_ERROR (mlflow#24535). Clients
retry a 500 with growing waits: loading an MLflow 3 model (``runs:/<id>/model``), which first
asks for files the run does not have, takes minutes instead of seconds. With this class the
server answers 404 RESOURCE_DOES_NOT_EXIST, as it does for a local artifact store.

Nothing else changes. Drop it once an MLflow release maps the 404 itself.
"""

from __future__ import annotations

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST
from mlflow.store.artifact.s3_artifact_repo import S3ArtifactRepository as _S3ArtifactRepository

__all__ = ["S3ArtifactRepository"]

# What botocore reports for an absent key: "404" from a HEAD (s3transfer's download starts
# with head_object, and a HEAD response has no error body), NoSuchKey from a GET.
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def _is_missing(exc: Exception) -> bool:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return False
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in _MISSING_CODES or status == 404


class S3ArtifactRepository(_S3ArtifactRepository):
    """The built-in S3 repository; a download of an absent key raises RESOURCE_DOES_NOT_EXIST."""

    def _download_file(self, remote_file_path, local_path):
        from botocore.exceptions import ClientError  # as lazy as the parent's boto3 import

        try:
            return super()._download_file(remote_file_path, local_path)
        except ClientError as exc:
            if not _is_missing(exc):
                raise
            raise MlflowException(
                f"No such artifact: {remote_file_path} (in {self.artifact_uri})",
                error_code=RESOURCE_DOES_NOT_EXIST,
            ) from exc

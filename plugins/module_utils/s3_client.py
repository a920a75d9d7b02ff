# -*- coding: utf-8 -*-
# Copyright: mlops.mlflow contributors
# Apache License 2.0 (see LICENSE)
"""boto3 S3 client creation and error translation for mlops.mlflow modules.

Every boto3/botocore failure leaves this module as an :class:`S3Error` whose text is
``<module>: <operation> on bucket '<name>' at <endpoint or AWS> failed: <code>: <message>``
with any credential value blanked out. An API the endpoint does not implement raises
:class:`S3Unsupported` instead, so callers can skip that feature.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised on hosts without boto3
    boto3 = Config = None
    BotoCoreError = ClientError = None
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = exc

# How S3-compatible servers answer an API they do not implement.
UNSUPPORTED_CODES = frozenset(["NotImplemented", "MethodNotAllowed", "XNotImplemented", "NotSupported", "Unsupported"])
UNSUPPORTED_STATUS = frozenset([405, 501])
MISSING_BUCKET_CODES = frozenset(["404", "NoSuchBucket", "NotFound"])

# A few quick attempts: an unreachable endpoint fails within seconds.
CONNECT_TIMEOUT = 3
READ_TIMEOUT = 30
MAX_ATTEMPTS = 2

CONNECTION_OPTIONS = ("endpoint_url", "region", "access_key", "secret_key", "session_token", "profile")
SECRET_OPTIONS = ("secret_key", "session_token")


class S3Error(Exception):
    """A failed S3 call, already phrased for the user and free of secrets."""

    def __init__(self, message, code=None):
        super(S3Error, self).__init__(message)
        self.code = code


class S3Unsupported(Exception):
    """The endpoint does not implement the API that was called."""

    def __init__(self, operation, code):
        super(S3Unsupported, self).__init__("%s: %s" % (operation, code))
        self.operation = operation
        self.code = code


def endpoint_label(endpoint_url):
    """How messages name the endpoint: its URL, or AWS when none is set."""
    return endpoint_url or "AWS"


def error_code(exc):
    """The S3 error code of a ClientError (``"404"`` for a body-less HEAD answer)."""
    error = getattr(exc, "response", None) or {}
    return str(error.get("Error", {}).get("Code") or error.get("ResponseMetadata", {}).get("HTTPStatusCode") or "")


def error_status(exc):
    error = getattr(exc, "response", None) or {}
    return error.get("ResponseMetadata", {}).get("HTTPStatusCode")


def is_unsupported(exc):
    return error_code(exc) in UNSUPPORTED_CODES or error_status(exc) in UNSUPPORTED_STATUS


def redact(text, secrets):
    """Blank every non-empty secret value out of ``text``."""
    text = str(text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "********")
    return text


class S3BucketClient(object):
    """A boto3 S3 client bound to one bucket, with errors turned into S3Error."""

    def __init__(self, params, module_name="s3_bucket"):
        self.bucket = params["name"]
        self.endpoint_url = params.get("endpoint_url")
        self.module_name = module_name
        self._secrets = [params.get(key) for key in SECRET_OPTIONS]
        self.client = self._create(params)

    # -- creation -----------------------------------------------------------------------
    def _create(self, params):
        s3_config = {"addressing_style": "path"} if self.endpoint_url else {}
        config = Config(
            s3=s3_config,
            retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
        )
        verify = None
        if params.get("validate_certs") is False:
            verify = False
        elif params.get("ca_bundle"):
            verify = params["ca_bundle"]
        try:
            session = boto3.session.Session(
                aws_access_key_id=params.get("access_key"),
                aws_secret_access_key=params.get("secret_key"),
                aws_session_token=params.get("session_token"),
                profile_name=params.get("profile"),
                region_name=params.get("region"),
            )
            return session.client("s3", endpoint_url=self.endpoint_url, verify=verify, config=config)
        except (BotoCoreError, ValueError) as exc:
            raise self.error("connect", exc) from None

    # -- errors -------------------------------------------------------------------------
    def fail(self, operation, code, message):
        text = "%s: %s on bucket '%s' at %s failed: %s: %s" % (
            self.module_name,
            operation,
            self.bucket,
            endpoint_label(self.endpoint_url),
            code,
            message,
        )
        return S3Error(redact(text, self._secrets), code=code)

    def error(self, operation, exc):
        """Translate a boto3/botocore exception into an S3Error."""
        if ClientError is not None and isinstance(exc, ClientError):
            code = error_code(exc) or "Error"
            message = (exc.response.get("Error") or {}).get("Message") or "HTTP %s" % error_status(exc)
        else:
            code = type(exc).__name__
            message = str(exc)
            if code == "EndpointConnectionError":
                message = "could not connect to the endpoint (%s)" % message
            elif code in ("ConnectTimeoutError", "ReadTimeoutError"):
                message = "the endpoint did not answer in time (%s)" % message
            elif code == "NoCredentialsError":
                message = "no credentials found: set access_key and secret_key, or profile, or the AWS environment"
        return self.fail(operation, code, message)

    def call(self, operation, method, **kwargs):
        """Run ``client.<method>(**kwargs)``; raise S3Unsupported or S3Error on failure."""
        try:
            return getattr(self.client, method)(**kwargs)
        except ClientError as exc:
            if is_unsupported(exc):
                raise S3Unsupported(operation, error_code(exc)) from None
            raise self.error(operation, exc) from None
        except BotoCoreError as exc:
            raise self.error(operation, exc) from None

    def call_allowing(self, operation, method, missing_codes, **kwargs):
        """Like call(), but return None when the error code is one of ``missing_codes``."""
        try:
            return getattr(self.client, method)(**kwargs)
        except ClientError as exc:
            if error_code(exc) in missing_codes:
                return None
            if is_unsupported(exc):
                raise S3Unsupported(operation, error_code(exc)) from None
            raise self.error(operation, exc) from None
        except BotoCoreError as exc:
            raise self.error(operation, exc) from None

    # -- bucket existence ---------------------------------------------------------------
    def bucket_exists(self):
        """True/False, or S3Error when the bucket cannot be probed (denied, bad credentials...)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return True
        except ClientError as exc:
            code = error_code(exc)
            if code in MISSING_BUCKET_CODES:
                return False
            if error_status(exc) != 403:
                raise self.error("head bucket", exc) from None
            head_error = exc
        except BotoCoreError as exc:
            raise self.error("head bucket", exc) from None
        # HEAD answers carry no body; a GET tells a bad signature from someone else's bucket.
        try:
            self.client.get_bucket_location(Bucket=self.bucket)
            return True
        except ClientError as exc:
            if is_unsupported(exc):
                raise self.error("head bucket", head_error) from None
            code = error_code(exc)
            if code in MISSING_BUCKET_CODES:
                return False
            if code in ("AccessDenied", "AllAccessDisabled", "403"):
                raise self.fail(
                    "access",
                    code,
                    "access denied: the bucket may be owned by someone else, or these credentials may not use it",
                ) from None
            raise self.error("access", exc) from None
        except BotoCoreError as exc:
            raise self.error("access", exc) from None

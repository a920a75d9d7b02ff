"""s3_iam with a non-default s3_iam_policy_name, against moto server: the user's inline policy
carries that name, so several deployments can share one IAM user namespace."""

from __future__ import annotations

import pytest
from integration.test_s3_iam_role import converge, iam_client
from support.s3_servers import moto_s3  # noqa: F401 - fixture

pytestmark = pytest.mark.integration


def test_inline_policy_takes_the_configured_name(moto_s3, tmp_path):  # noqa: F811
    result = converge(moto_s3, tmp_path, s3_iam_policy_name="team-a-artifacts")
    assert result.returncode == 0, result.stdout[-3000:]
    iam = iam_client(moto_s3)
    # moto's state is per session: other tests may have left the default-named policy behind.
    assert "team-a-artifacts" in iam.list_user_policies(UserName="mlflow")["PolicyNames"]
    document = iam.get_user_policy(UserName="mlflow", PolicyName="team-a-artifacts")["PolicyDocument"]
    assert "acme-mlflow-artifacts" in str(document)

"""The SeaweedFS unit as object_store writes it, with a non-default account, data directory and
volume size limit: the role's real template (roles/object_store/templates/seaweedfs.service.j2)
rendered with the role's defaults and vars plus the overrides, then parsed."""

from __future__ import annotations

import configparser
import shlex

from support.role_template import render_role_template

OVERRIDES = {
    "object_store_user": "artifacts",
    "object_store_group": "artifact-readers",
    "object_store_data_dir": "/srv/s3data",
    "object_store_seaweedfs_volume_size_limit_mb": 256,
}


def _service(tmp_path, overrides):
    text = render_role_template("object_store", "seaweedfs.service.j2", tmp_path / "unit", tmp_path, overrides)
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(text)
    return parser["Service"]


def test_seaweedfs_unit_takes_the_account_directory_and_volume_limit(tmp_path):
    service = _service(tmp_path, OVERRIDES)
    assert (service["User"], service["Group"]) == ("artifacts", "artifact-readers")
    assert service["WorkingDirectory"] == "/srv/s3data"
    assert service["ReadWritePaths"] == "/srv/s3data"  # the sandbox lets it write only there
    argv = shlex.split(service["ExecStart"])
    assert "-dir=/srv/s3data" in argv
    assert "-master.volumeSizeLimitMB=256" in argv


def test_seaweedfs_unit_defaults(tmp_path):
    service = _service(tmp_path, {})
    assert (service["User"], service["Group"]) == ("s3store", "s3store")
    assert "-master.volumeSizeLimitMB=1024" in shlex.split(service["ExecStart"])

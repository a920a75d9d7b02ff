"""The store filters: backend store URIs built from their parts, percent-encoded in one place."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.mlops.mlflow.plugins.filter.store import (
    FilterModule,
    store_uri,
    url_userinfo,
    with_driver,
)
from jinja2.filters import do_urlencode
from sqlalchemy.engine import make_url

PARTS = {"user": "mlflow", "password": "a-good-db-password", "host": "10.0.0.11", "database": "mlflow"}


def test_the_filters_are_registered():
    assert set(FilterModule().filters()) == {"store_uri", "url_userinfo", "with_driver"}


@pytest.mark.parametrize(
    ("backend", "parts", "uri"),
    [
        ("sqlite", {"path": "/var/lib/mlflow/mlflow.db"}, "sqlite:////var/lib/mlflow/mlflow.db"),
        ("postgresql", PARTS, "postgresql+psycopg2://mlflow:a-good-db-password@10.0.0.11:5432/mlflow"),
        ("mysql", PARTS, "mysql+pymysql://mlflow:a-good-db-password@10.0.0.11:3306/mlflow"),
        (
            "postgresql",
            {**PARTS, "port": 6432},
            "postgresql+psycopg2://mlflow:a-good-db-password@10.0.0.11:6432/mlflow",
        ),
        ("postgresql", {**PARTS, "port": ""}, "postgresql+psycopg2://mlflow:a-good-db-password@10.0.0.11:5432/mlflow"),
        ("postgresql+pg8000", PARTS, "postgresql+pg8000://mlflow:a-good-db-password@10.0.0.11:5432/mlflow"),
        (
            "postgresql",
            {**PARTS, "host": "fd00::11"},
            "postgresql+psycopg2://mlflow:a-good-db-password@[fd00::11]:5432/mlflow",
        ),
        (
            "postgresql",
            {**PARTS, "user": "ml/flow", "password": "p@ss:w/rd&x=1 +%"},
            "postgresql+psycopg2://ml%2Fflow:p%40ss%3Aw%2Frd%26x%3D1%20%2B%25@10.0.0.11:5432/mlflow",
        ),
        ("postgresql", {**PARTS, "password": "pässwörd-ünïcode"}, None),
        (
            "postgresql",
            {
                **PARTS,
                "options": {"sslmode": "require", "sslrootcert": "/etc/ssl/rds ca&b=2+.pem", "connect_timeout": 10},
            },
            "postgresql+psycopg2://mlflow:a-good-db-password@10.0.0.11:5432/mlflow"
            "?sslmode=require&sslrootcert=/etc/ssl/rds%20ca%26b%3D2%2B.pem&connect_timeout=10",
        ),
        (
            "postgresql",
            {**PARTS, "options": {}},
            "postgresql+psycopg2://mlflow:a-good-db-password@10.0.0.11:5432/mlflow",
        ),
    ],
)
def test_store_uri(backend, parts, uri):
    built = store_uri(backend, **parts)
    if uri is not None:
        assert built == uri
    if backend != "sqlite":
        url = make_url(built)
        assert (url.username, url.password, url.host, url.database) == (
            parts["user"],
            parts["password"],
            parts["host"],
            parts["database"],
        )
        assert dict(url.query) == {name: str(value) for name, value in (parts.get("options") or {}).items()}


@pytest.mark.parametrize(
    "text",
    ["plain", "ml/flow", "p@ss:w/rd&x=1 +%", "pässwörd", "a b", "?#[]!$'()*,;~"],
)
def test_userinfo_is_what_jinja_urlencode_gave(text):
    # The role used to build the URI with `urlencode | replace('/', '%2F')`; the result is the same.
    assert url_userinfo(text, text) == "%s:%s" % ((do_urlencode(text).replace("/", "%2F"),) * 2)


@pytest.mark.parametrize(
    ("backend", "parts"),
    [
        ("sqlite", {"path": "relative/mlflow.db"}),
        ("sqlite", {}),
        ("oracle", PARTS),
        ("postgresql", {**PARTS, "host": ""}),
        ("postgresql", {**PARTS, "options": {"ssl mode": "require"}}),
        ("postgresql", {**PARTS, "options": {"sslmode": ["require"]}}),
        ("postgresql", {**PARTS, "options": {"sslmode": {"a": 1}}}),
        ("postgresql", {**PARTS, "options": ["sslmode=require"]}),
    ],
)
def test_store_uri_refuses_what_is_no_store(backend, parts):
    with pytest.raises(AnsibleFilterError):
        store_uri(backend, **parts)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("postgresql://u:p@h/db", "postgresql+psycopg2://u:p@h/db"),
        ("mysql://u:p@h/db", "mysql+pymysql://u:p@h/db"),
        ("postgresql+pg8000://u:p@h/db", "postgresql+pg8000://u:p@h/db"),
        ("mysql+mysqldb://u:p@h/db", "mysql+mysqldb://u:p@h/db"),
        ("sqlite:////var/lib/mlflow.db", "sqlite:////var/lib/mlflow.db"),
        ("", ""),
    ],
)
def test_with_driver(uri, expected):
    assert with_driver(uri) == expected

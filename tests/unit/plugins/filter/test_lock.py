"""lock_overlay: the overlay's pins replace the base lock's pins of the same packages."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.mlops.mlflow.plugins.filter.lock import FilterModule, lock_overlay


def test_overlay_pins_replace_and_add():
    base = "# lock\nFlask==3.1.3\ngunicorn==26.2.0\nSQLAlchemy==2.1.9\n"
    overlay = "# overlay\ngunicorn==23.0.0\nmlflow-oidc-auth==10.2.0\n"
    assert (
        lock_overlay(base, overlay)
        == "# lock\nFlask==3.1.3\nSQLAlchemy==2.1.9\ngunicorn==23.0.0\nmlflow-oidc-auth==10.2.0\n"
    )


@pytest.mark.parametrize(
    "spelling", ["prometheus_flask_exporter", "Prometheus-Flask-Exporter", "prometheus.flask.exporter"]
)
def test_names_compare_normalised(spelling):
    merged = lock_overlay("prometheus-flask-exporter==0.23.2\n", f"{spelling}==0.23.3\n")
    assert merged == f"{spelling}==0.23.3\n"


@pytest.mark.parametrize(
    ("base", "overlay"),
    [
        ("flask>=3\n", "gunicorn==23.0.0\n"),
        ("flask==3.1.3\n", "gunicorn<24\n"),
        ("flask==3.1.3\n", "gunicorn==23.0.0\nGunicorn==22.0.0\n"),
        ("flask==3.1.3\n", "-r other.txt\n"),
    ],
)
def test_lines_that_are_not_pins_are_refused(base, overlay):
    with pytest.raises(AnsibleFilterError):
        lock_overlay(base, overlay)


def test_filter_is_registered():
    assert FilterModule().filters()["lock_overlay"] is lock_overlay

"""Offline stand-in for ansible-test's get-pip bootstrap script.

ansible-test downloads get-pip.py from a host this network does not reach;
this shim bootstraps pip from the interpreter's own ensurepip and then lets
pip install the requested pip version from the package index.
"""

import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

ensurepip.bootstrap(upgrade=True)
args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
# ansible-test runs this with a scrubbed environment; keep the system CA bundle.
ca_bundle = os.environ.get("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")
if os.path.exists(ca_bundle):
    args = ["--cert", ca_bundle, *args]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args]))

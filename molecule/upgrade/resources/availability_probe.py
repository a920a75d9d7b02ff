"""Sample the mlflow server every 0.2 s while a flag file exists: one line per sample.

    <epoch seconds> <HTTP status of /health, or 0 when refused/timed out> <MainPID> <NRestarts>

Runs with the system python (the server's venv is being replaced under it) and ends with a
"done" line once the flag is removed.
"""

import subprocess
import sys
import time
import urllib.error
import urllib.request

LOG, FLAG = sys.argv[1], sys.argv[2]
UNIT = "mlflow-server"


def health() -> int:
    request = urllib.request.Request("http://127.0.0.1:5000/health", headers={"Host": "localhost"})
    try:
        with urllib.request.urlopen(request, timeout=2) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def unit() -> list[str]:
    out = subprocess.run(
        ["systemctl", "show", UNIT, "--property=MainPID,NRestarts", "--value"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return out if len(out) == 2 else ["?", "?"]


with open(LOG, "w", buffering=1) as log:
    while True:
        try:
            open(FLAG).close()
        except FileNotFoundError:
            break
        log.write(" ".join([f"{time.time():.3f}", str(health()), *unit()]) + "\n")
        time.sleep(0.2)
    log.write("done\n")

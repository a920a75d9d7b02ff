"""One REST call as a given user (runs inside the test host): prints {"status", "headers", "body"},
header names in lower case.

python rest_call.py METHOD URL [--user U --password P] [--json BODY] [--cafile CA] [--insecure]
"""

from __future__ import annotations

import argparse
import base64
import json
import ssl
import sys
import urllib.error
import urllib.request


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("method")
    parser.add_argument("url")
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--json", dest="body", default=None)
    parser.add_argument("--cafile", default=None)
    parser.add_argument("--insecure", action="store_true")
    args = parser.parse_args()

    data = args.body.encode() if args.body is not None else None
    request = urllib.request.Request(args.url, data=data, method=args.method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if args.user:
        token = base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
        request.add_header("Authorization", "Basic " + token)
    context = ssl.create_default_context(cafile=args.cafile)
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        status, headers, raw = err.code, err.headers, err.read()
    text = raw.decode("utf-8", "replace")
    try:
        body = json.loads(text)
    except ValueError:
        body = text[:500]
    headers = {name.lower(): value for name, value in headers.items()}  # HTTP names are case-blind
    print(json.dumps({"status": status, "headers": headers, "body": body}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

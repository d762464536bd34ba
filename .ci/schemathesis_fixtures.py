"""Fixtures for .ci/schemathesis.sh: a tenant with one of everything, so generated requests
meet real ids (1, 2, ...) and lists have rows to describe.

    python3 schemathesis_fixtures.py BASE_URL ADMIN_TOKEN [PLUGIN.wasm]

Prints the tenant's API key. Uses only the standard library.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

base, admin_token = sys.argv[1], sys.argv[2]
plugin_path = sys.argv[3] if len(sys.argv) > 3 else ""


def call(method, path, body=None, key=None, admin=False, raw=None, content_type=None):
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["content-type"] = "application/json"
    if raw is not None:
        data = raw
        headers["content-type"] = content_type
    if key:
        headers["x-api-key"] = key
    if admin:
        headers["authorization"] = f"Bearer {admin_token}"
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read()
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {path}: {e.code} {e.read().decode(errors='replace')}")
    return json.loads(text) if text else None


tenant = call("POST", "/api/admin/tenants", {"name": "Schemathesis", "email": "st@example.com",
                                              "package": "enterprise", "password": "st-password"},
              admin=True)
key = tenant["api_key"]
device = call("POST", "/api/user/devices", {"phone": "6281200000001", "name": "st"}, key=key)
# The QR answers once the pairing round has started: only then is there something to scan.
call("GET", f"/api/user/devices/{device['id']}/qr", key=key)
call("POST", "/api/admin/simulator/scan", {"device": device["id"]}, admin=True)
for _ in range(100):
    if call("GET", f"/api/user/devices/{device['id']}", key=key)["status"] == "connected":
        break
    time.sleep(0.1)
else:
    raise SystemExit("the device did not connect")

call("POST", "/api/user/auto-reply", {"keyword": "halo", "reply": "Halo {name}!"}, key=key)
call("POST", "/api/user/webhooks", {"url": "http://127.0.0.1:9/hook", "description": "closed port"},
     key=key)
call("POST", "/api/user/scheduled-messages", {"device": device["id"], "to": "6281299999999",
                                               "text": "later", "send_at": "2099-01-01T00:00:00Z"},
     key=key)
sent = call("POST", "/api/send-message", {"device": device["id"], "to": "6281299999999",
                                          "text": "hello"}, key=key)
call("POST", "/api/admin/simulator/receipt", {"message_id": sent["id"], "status": "read"}, admin=True)
call("POST", "/api/admin/simulator/inbound", {"device": device["id"], "from": "6281299999999",
                                              "text": "halo"}, admin=True)
if plugin_path and os.path.exists(plugin_path):
    boundary = "st-boundary-7d1f"
    with open(plugin_path, "rb") as f:
        wasm = f.read()
    form = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\necho\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"echo.wasm\"\r\n"
        f"Content-Type: application/wasm\r\n\r\n"
    ).encode() + wasm + f"\r\n--{boundary}--\r\n".encode()
    call("POST", "/api/user/plugins", raw=form, key=key,
         content_type=f"multipart/form-data; boundary={boundary}")
print(key)

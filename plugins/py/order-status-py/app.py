"""order-status-py: `order-status` in Python. Answers "status <order>" with what the shop's own
HTTP API says, and counts the lookups of each order in the key-value store.

A text starting with the keyword ("status 1234", "Status #1234") makes the plugin GET `url`
with `{order}` replaced by the order number, then reply (quoting the question):
- 200 with a JSON object: `reply` with `{order}` and `{status}` (the answer's `field`);
- 404: `not_found`;
- anything else, or no answer (a host the tenant did not allow, a timeout): `unavailable`, and
  a `warn` log line with the reason.
The API's host must be in the plugin's `allowed_hosts`.

Configuration (only `url` is required; defaults shown):
  {"url": "https://api.toko.id/orders/{order}", "headers": {}, "keyword": "status",
   "field": "status", "reply": "Pesanan {order}: {status}",
   "not_found": "Pesanan {order} tidak ditemukan.",
   "unavailable": "Maaf, status pesanan belum bisa dicek. Silakan coba lagi nanti.", "stop": true}
"""

import json
import re

from componentize_py_types import Err
from wit_world import WitWorld
from wit_world.imports import http, kv, log, types

DEFAULTS = {
    "headers": {},
    "keyword": "status",
    "field": "status",
    "reply": "Pesanan {order}: {status}",
    "not_found": "Pesanan {order} tidak ditemukan.",
    "unavailable": "Maaf, status pesanan belum bisa dicek. Silakan coba lagi nanti.",
    "stop": True,
}

ORDER = re.compile(r"^[ :]*#?([A-Za-z0-9-]{1,64})")


def order_number(text: str, keyword: str):
    """The order number after the keyword at the start of `text`, or None."""
    text = text.strip()
    if not keyword or text[: len(keyword)].lower() != keyword.lower():
        return None
    rest = text[len(keyword):]
    if not rest or rest[0] not in " :#":
        return None
    match = ORDER.match(rest)
    return match.group(1) if match else None


def increment(key: str) -> int:
    """Adds one to the number stored under `key` and returns it."""
    stored = kv.get(key)
    count = (int(stored.decode()) if stored else 0) + 1
    kv.set(key, str(count).encode())
    return count


class WitWorld(WitWorld):
    def handle(self, message: types.Message, context: types.Context) -> types.Decision:
        cfg = {**DEFAULTS, **json.loads(context.config or "{}")}
        if not isinstance(cfg.get("url"), str):
            raise Err(types.PluginError_BadConfig("config: `url` is required"))
        order = order_number(message.text, cfg["keyword"]) if message.text else None
        if order is None:
            return types.Decision(actions=[], stop=False, quote=False)
        log.log(log.Level.INFO, f"order {order}: lookup {increment(f'lookups:{order}')}")

        def fill(template: str, status: str = "") -> str:
            return template.replace("{order}", order).replace("{status}", status)

        request = http.Request(
            method="GET",
            url=cfg["url"].replace("{order}", order),
            headers=list(cfg["headers"].items()),
            body=None,
            timeout_ms=None,
        )
        try:
            answer = http.send(request)
            if answer.status == 200:
                value = json.loads(answer.body).get(cfg["field"])
                if isinstance(value, bool):
                    text = fill(cfg["reply"], "true" if value else "false")
                elif isinstance(value, (str, int, float)):
                    text = fill(cfg["reply"], str(value))
                else:
                    log.log(log.Level.WARN, f"order {order}: the answer has no `{cfg['field']}`")
                    text = fill(cfg["unavailable"])
            elif answer.status == 404:
                text = fill(cfg["not_found"])
            else:
                log.log(log.Level.WARN, f"order {order}: the API answered HTTP {answer.status}")
                text = fill(cfg["unavailable"])
        except Err as e:
            # A request that got no answer: `e.value` is the `http-error` case.
            log.log(log.Level.WARN, f"order {order}: {type(e.value).__name__}: {e.value.value}")
            text = fill(cfg["unavailable"])
        except ValueError as e:
            log.log(log.Level.WARN, f"order {order}: the answer is not JSON: {e}")
            text = fill(cfg["unavailable"])
        return types.Decision(actions=[types.Action_ReplyText(text)], stop=cfg["stop"] is True, quote=True)

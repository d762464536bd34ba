// order-status-js: `order-status` in JavaScript. Answers "status <order>" with what the shop's
// own HTTP API says, and counts the lookups of each order in the key-value store.
//
// A text starting with the keyword ("status 1234", "Status #1234") makes the plugin GET
// `url` with `{order}` replaced by the order number, then reply (quoting the question):
// - 200 with a JSON object: `reply` with `{order}` and `{status}` (the answer's `field`);
// - 404: `not_found`;
// - anything else, or no answer (a host the tenant did not allow, a timeout): `unavailable`,
//   and a `warn` log line with the reason.
// The API's host must be in the plugin's `allowed_hosts`.
//
// Configuration (only `url` is required; defaults shown):
//   {"url": "https://api.toko.id/orders/{order}", "headers": {}, "keyword": "status",
//    "field": "status", "reply": "Pesanan {order}: {status}",
//    "not_found": "Pesanan {order} tidak ditemukan.",
//    "unavailable": "Maaf, status pesanan belum bisa dicek. Silakan coba lagi nanti.", "stop": true}
import { send } from "wa-gateway:plugin/http@0.3.0";
import { get, set } from "wa-gateway:plugin/kv@0.3.0";
import { log } from "wa-gateway:plugin/log@0.3.0";

const DEFAULTS = {
    headers: {},
    keyword: "status",
    field: "status",
    reply: "Pesanan {order}: {status}",
    not_found: "Pesanan {order} tidak ditemukan.",
    unavailable: "Maaf, status pesanan belum bisa dicek. Silakan coba lagi nanti.",
    stop: true,
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// The order number after the keyword at the start of `text`, or undefined.
function orderNumber(text, keyword) {
    const trimmed = text.trim();
    if (!keyword || trimmed.slice(0, keyword.length).toLowerCase() !== keyword.toLowerCase()) return undefined;
    const rest = trimmed.slice(keyword.length);
    if (!/^[ :#]/.test(rest)) return undefined;
    const match = /^[ :]*#?([A-Za-z0-9-]{1,64})/.exec(rest);
    return match ? match[1] : undefined;
}

// Adds one to the number stored under `key` and returns it.
function increment(key) {
    const stored = get(key);
    const count = (stored === undefined ? 0 : Number(decoder.decode(stored)) || 0) + 1;
    set(key, encoder.encode(String(count)));
    return count;
}

export function handle(msg, ctx) {
    const cfg = { ...DEFAULTS, ...JSON.parse(ctx.config || "{}") };
    if (typeof cfg.url !== "string") {
        throw { tag: "bad-config", val: "config: `url` is required" };
    }
    const order = msg.text === undefined ? undefined : orderNumber(msg.text, cfg.keyword);
    if (order === undefined) {
        return { actions: [], stop: false, quote: false };
    }
    log("info", `order ${order}: lookup ${increment(`lookups:${order}`)}`);
    const fill = (template, status) => template.replaceAll("{order}", order).replaceAll("{status}", status ?? "");
    let text;
    try {
        const answer = send({
            method: "GET",
            url: cfg.url.replaceAll("{order}", order),
            headers: Object.entries(cfg.headers),
            body: undefined,
            timeoutMs: undefined,
        });
        if (answer.status === 200) {
            const value = JSON.parse(decoder.decode(answer.body))[cfg.field];
            if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") {
                text = fill(cfg.reply, String(value));
            } else {
                log("warn", `order ${order}: the answer has no \`${cfg.field}\``);
                text = fill(cfg.unavailable);
            }
        } else if (answer.status === 404) {
            text = fill(cfg.not_found);
        } else {
            log("warn", `order ${order}: the API answered HTTP ${answer.status}`);
            text = fill(cfg.unavailable);
        }
    } catch (e) {
        // A request that got no answer: the `http-error` is the exception's payload.
        const why = e && e.payload ? `${e.payload.tag}: ${e.payload.val}` : String(e);
        log("warn", `order ${order}: ${why}`);
        text = fill(cfg.unavailable);
    }
    return { actions: [{ tag: "reply-text", val: text }], stop: cfg.stop === true, quote: true };
}

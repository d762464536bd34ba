// telegram-notify-js: a webhook transformation in JavaScript, for the `transform` world of
// wa-gateway:transform@0.1.0 (wit/transform/v0.1.0/transform.wit).
//
// Attach it to a `notify` webhook endpoint whose URL is `https://api.telegram.org`: every
// inbound message (or whichever events `events` lists) becomes a Telegram Bot API
// `sendMessage` call to one chat, `POST /bot<token>/sendMessage` with `{"chat_id", "text"}`.
// The token goes in the path the transformation returns, so it is kept in the plugin's
// configuration and never in the endpoint's URL. Other events are skipped: nothing is sent.
// It counts what it forwarded in its key-value store (key `forwarded`) and logs the count.
//
// Configuration (`token` and `chat_id` required):
//
//   {"token": "123456:ABC-DEF…", "chat_id": "-1001234567890", "events": ["message.received"]}
//
// How the transform world looks in JavaScript (componentize-js / jco): `event.type`,
// `event.data` (a JSON string), `ctx.config`; return `{ tag: "send", val: request }` with the
// request's fields in camelCase (`contentType`), or `{ tag: "skip" }`; throw
// `{ tag: "bad-config", val: "…" }` (or `failed`) to fail the run.
import { get, set } from "wa-gateway:plugin/kv@0.3.0";
import { log } from "wa-gateway:plugin/log@0.3.0";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// Adds one to the number stored under `key` and returns it.
function increment(key) {
    const stored = get(key);
    const count = (stored === undefined ? 0 : Number(decoder.decode(stored)) || 0) + 1;
    set(key, encoder.encode(String(count)));
    return count;
}

function config(text) {
    let cfg;
    try {
        cfg = JSON.parse(text);
    } catch (e) {
        throw { tag: "bad-config", val: `config is not JSON: ${e}` };
    }
    if (typeof cfg.token !== "string" || !/^[0-9]+:[A-Za-z0-9_-]+$/.test(cfg.token)) {
        throw { tag: "bad-config", val: "config: `token` must be a bot token (`123456:ABC…`)" };
    }
    if (typeof cfg.chat_id !== "string" && typeof cfg.chat_id !== "number") {
        throw { tag: "bad-config", val: "config: `chat_id` is required" };
    }
    const events = cfg.events ?? ["message.received"];
    if (!Array.isArray(events) || !events.every((e) => typeof e === "string")) {
        throw { tag: "bad-config", val: "config: `events` must be a list of event names" };
    }
    return { token: cfg.token, chatId: cfg.chat_id, events };
}

// The message as one line of plain text.
function describe(type, data) {
    if (type === "message.received") {
        const from = data.push_name ? `${data.push_name} (+${data.from})` : `+${data.from}`;
        const body = data.type === "text" || data.type === undefined
            ? data.text ?? ""
            : `[${data.type}]${data.text ? ` ${data.text}` : ""}`;
        return `${from}: ${body}`;
    }
    const about = ["status", "to", "from", "group", "plugin", "error"]
        .filter((field) => typeof data[field] === "string" && data[field] !== "")
        .map((field) => `${field}: ${data[field]}`);
    return [type, ...about].join(" · ");
}

export function transform(event, ctx) {
    const cfg = config(ctx.config);
    if (!cfg.events.includes(event.type)) {
        return { tag: "skip" };
    }
    const data = JSON.parse(event.data);
    const text = describe(event.type, data);
    const count = increment("forwarded");
    log("info", `${event.type} ${event.id} → Telegram (forwarded: ${count})`);
    return {
        tag: "send",
        val: {
            body: JSON.stringify({ chat_id: cfg.chatId, text }),
            contentType: undefined,
            headers: [],
            path: `/bot${cfg.token}/sendMessage`,
        },
    };
}

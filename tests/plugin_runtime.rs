//! The plugin runtime with the real components `plugins/build.sh` writes to
//! `target/plugins/<name>.wasm`: the example plugins do their job, the adversarial ones are
//! stopped with the right outcome well within their limits, a component built for the 0.1.0
//! world runs as before beside the 0.2.0 ones (which see every kind of message and may reply
//! with locations and contact cards, quote, react and mark read, within the same caps),
//! uploads that are not plugins are refused with a reason, stored artefacts load without
//! compiling, and the key-value store keeps its promises (on SQLite always, on PostgreSQL too
//! when `GATEWAY_TEST_POSTGRES_URL` is set).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wa_gateway::config::{Config, PluginsConfig};
use wa_gateway::content::{ContactCard, Location, PollSpec, QuotedRef};
use wa_gateway::db::plugins::NewPlugin;
use wa_gateway::db::tenants::NewTenant;
use wa_gateway::db::Db;
use wa_gateway::plugins::kv::{KvAccess, KvError, KvLimits, KvSession};
use wa_gateway::plugins::runtime::{
    can_lower_priority, Action, Outcome, PluginContext, PluginKind, PluginMedia, PluginMessage, Prepared,
    RunInput, RunReport, Runtime, TransformContext, TransformEvent, TransformInput, Transformed, World,
};

#[path = "support/backend.rs"]
mod backend;
#[path = "support/postgres.rs"]
mod pg_support;

// ----- helpers -----

/// The bytes of `target/plugins/<name>.wasm`.
fn plugin(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/plugins").join(format!("{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{} is missing ({e}): run plugins/build.sh first", path.display()))
}

/// The default limits, with a wall clock far beyond any CPU deadline: a run that uses the CPU
/// for more than a few milliseconds is lowered in priority, and on a busy machine it would
/// then reach the default 200 ms wall clock first. Tests of the wall clock set their own.
fn config() -> PluginsConfig {
    PluginsConfig { timeout_ms: 10_000, ..Config::from_toml("").expect("the defaults load").plugins }
}

fn runtime_with(cfg: &PluginsConfig) -> Runtime {
    Runtime::new(cfg).expect("the runtime starts")
}

fn runtime() -> Runtime {
    runtime_with(&config())
}

fn prepare(runtime: &Runtime, name: &str) -> Prepared {
    match runtime.compile(&plugin(name)) {
        Ok(compiled) => compiled.prepared,
        Err(e) => panic!("{name} is refused: {e}"),
    }
}

fn input(text: Option<&str>, config: &str) -> RunInput {
    RunInput {
        message: PluginMessage {
            id: 42,
            wa_id: "3EB0C767D26A1D2E5A1B".into(),
            chat: "6281234567890@s.whatsapp.net".into(),
            sender: "6281234567890".into(),
            push_name: Some("Budi".into()),
            is_group: false,
            kind: "text".into(),
            text: text.map(Into::into),
            timestamp_ms: 1_767_225_600_000,
            ..PluginMessage::default()
        },
        context: PluginContext {
            tenant_id: 1,
            device_id: 7,
            device_phone: "6289876543210".into(),
            plugin_id: 3,
            config: config.into(),
        },
    }
}

async fn run(runtime: &Runtime, name: &str, text: &str) -> RunReport {
    let prepared = prepare(runtime, name);
    runtime.run(&prepared, input(Some(text), "{}"), KvAccess::None).await
}

fn texts(report: &RunReport) -> Vec<String> {
    let decision = report.decision.as_ref().unwrap_or_else(|| panic!("no decision: {report:?}"));
    decision
        .actions
        .iter()
        .map(|a| match a {
            Action::ReplyText { text } => text.clone(),
            other => panic!("not a text reply: {other:?}"),
        })
        .collect()
}

/// Compiles WAT text (a hand-written component) to binary.
fn wat(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("the WAT parses")
}

// ----- example plugins -----

#[tokio::test]
async fn echo_replies_echo_and_the_text() {
    let report = run(&runtime(), "echo", "halo plugin").await;
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    assert_eq!(texts(&report), ["echo: halo plugin"]);
    assert!(!report.decision.unwrap().stop);
    assert!(report.error.is_none());
}

#[tokio::test]
async fn echo_leaves_a_message_without_text_alone() {
    let runtime = runtime();
    let prepared = prepare(&runtime, "echo");
    let report = runtime.run(&prepared, input(None, "{}"), KvAccess::None).await;
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    assert!(texts(&report).is_empty());
}

#[tokio::test]
async fn a_prepared_plugin_serves_many_runs_at_once_beyond_the_slots() {
    let runtime = runtime();
    let prepared = prepare(&runtime, "echo");
    let runs = (0..300).map(|i| {
        let (runtime, prepared) = (runtime.clone(), prepared.clone());
        tokio::spawn(async move {
            runtime.run(&prepared, input(Some(&format!("n{i}")), "{}"), KvAccess::None).await
        })
    });
    for (i, run) in futures::future::join_all(runs).await.into_iter().enumerate() {
        let report = run.expect("the task finishes");
        assert_eq!(texts(&report), [format!("echo: n{i}")]);
    }
}

#[tokio::test]
async fn keyword_router_replies_from_its_config_and_may_stop_the_chain() {
    let runtime = runtime();
    let prepared = prepare(&runtime, "keyword-router");
    let config = r#"{"routes": [{"keyword": "harga", "reply": "Mulai Rp50.000."},
        {"keyword": "alamat", "reply": "Jl. Merdeka 1."}], "stop": true}"#;
    let report = runtime.run(&prepared, input(Some("Berapa HARGA-nya?"), config), KvAccess::None).await;
    assert_eq!(texts(&report), ["Mulai Rp50.000."]);
    assert!(report.decision.unwrap().stop);
    let report = runtime.run(&prepared, input(Some("halo"), config), KvAccess::None).await;
    assert!(texts(&report).is_empty());
}

#[tokio::test]
async fn a_plugins_own_error_is_recorded_as_error_with_its_reason() {
    let runtime = runtime();
    let prepared = prepare(&runtime, "keyword-router");
    let config = r#"{"routes": [{"keyword": " ", "reply": "x"}]}"#;
    let report = runtime.run(&prepared, input(Some("halo"), config), KvAccess::None).await;
    assert_eq!(report.outcome, Outcome::Error, "{report:?}");
    assert!(report.decision.is_none());
    let error = report.error.unwrap();
    assert!(error.starts_with("bad config: ") && error.contains("routes[0].keyword"), "{error}");
}

#[tokio::test]
async fn business_hours_answers_when_closed() {
    let runtime = runtime();
    let prepared = prepare(&runtime, "business-hours");
    let closed = r#"{"days": [], "reply": "Kami sedang tutup."}"#;
    let report = runtime.run(&prepared, input(Some("halo"), closed), KvAccess::None).await;
    assert_eq!(texts(&report), ["Kami sedang tutup."]);
    let open = r#"{"open": "00:00", "close": "24:00", "days": [1, 2, 3, 4, 5, 6, 7]}"#;
    let report = runtime.run(&prepared, input(Some("halo"), open), KvAccess::None).await;
    assert!(texts(&report).is_empty(), "{report:?}");
}

#[tokio::test]
async fn log_lines_are_bounded_in_number_and_length() {
    let cfg = config();
    let runtime = runtime_with(&cfg);
    let prepared = prepare(&runtime, "flood-output");
    // One short reply, within the caps, after 100 log lines of 1,024 bytes.
    let config = r#"{"actions": 1, "reply_bytes": 10, "log_lines": 100}"#;
    let report = runtime.run(&prepared, input(Some("x"), config), KvAccess::None).await;
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    assert_eq!(report.logs.len(), cfg.max_log_lines + 1);
    for line in &report.logs[..cfg.max_log_lines] {
        assert_eq!((line.level.as_str(), line.message.len()), ("info", cfg.max_log_line_bytes));
    }
    let dropped = format!("{} more log lines dropped (limit {})", 100 - cfg.max_log_lines, cfg.max_log_lines);
    assert_eq!(report.logs.last().unwrap().message, dropped);
}

#[tokio::test]
async fn each_output_cap_on_its_own_refuses_the_decision() {
    let runtime = runtime();
    let prepared = prepare(&runtime, "flood-output");
    for (config, reason) in [
        (r#"{"actions": 6, "reply_bytes": 10, "log_lines": 0}"#, "6 actions, the limit is 5"),
        (r#"{"actions": 1, "reply_bytes": 4097, "log_lines": 0}"#, "4097 bytes, the limit is 4096"),
    ] {
        let report = runtime.run(&prepared, input(Some("x"), config), KvAccess::None).await;
        assert_eq!(report.outcome, Outcome::OutputTooLarge, "{report:?}");
        assert!(report.error.as_deref().unwrap_or_default().contains(reason), "{report:?}");
        assert!(report.decision.is_none());
    }
}

#[tokio::test]
async fn a_plugin_prepared_by_another_runtime_is_not_run() {
    let prepared = prepare(&runtime(), "echo");
    let report = runtime().run(&prepared, input(Some("x"), "{}"), KvAccess::None).await;
    assert_eq!(report.outcome, Outcome::Internal, "{report:?}");
}

// ----- the 0.1.0 and 0.2.0 worlds side by side -----

/// A customer's location message, quoting an earlier message and mentioning the shop.
fn location_message(config: &str) -> RunInput {
    let mut input = input(Some("Toko Sinar"), config);
    let m = &mut input.message;
    m.kind = "location".into();
    m.location = Some(Location {
        latitude: -6.9175,
        longitude: 107.6191,
        name: Some("Toko Sinar".into()),
        address: Some("Jl. Merdeka 1".into()),
    });
    m.reply_to = Some(QuotedRef {
        id: Some(41),
        wa_id: "3EB0AAAA".into(),
        sender: Some("6289876543210".into()),
        from_me: true,
        text: Some("Kirim lokasi ya".into()),
    });
    m.mentions = vec!["6289876543210".into()];
    input
}

/// The JSON report the `probe` plugin sends first.
fn probe_report(report: &RunReport) -> Value {
    let decision = report.decision.as_ref().unwrap_or_else(|| panic!("no decision: {report:?}"));
    match decision.actions.first() {
        Some(Action::ReplyText { text }) => serde_json::from_str(text).expect("the report is JSON"),
        other => panic!("no report first: {other:?}"),
    }
}

/// An event for `slack-notify`, with `config`.
fn event(kind: &str, data: Value, config: &str) -> TransformInput {
    TransformInput {
        event: TransformEvent {
            id: "msg_1".into(),
            kind: kind.into(),
            timestamp: "2026-12-07T09:30:00.000Z".into(),
            data: data.to_string(),
        },
        context: TransformContext {
            tenant_id: 1,
            endpoint_id: 2,
            url: "https://hooks.slack.com/services/T0/B0/X".into(),
            plugin_id: 3,
            config: config.into(),
        },
    }
}

#[tokio::test]
async fn a_transformation_shapes_events_and_each_kind_is_given_only_its_own_input() {
    let runtime = runtime();
    let slack = prepare(&runtime, "slack-notify");
    assert_eq!(slack.world(), World::Transform0_1);
    assert_eq!(slack.kind(), PluginKind::Transform);
    assert_eq!(prepare(&runtime, "echo").kind(), PluginKind::AutoReply);
    let data = json!({"from": "6281234567890", "push_name": "Budi", "text": "halo", "type": "text", "device": "628111"});

    let report = runtime.run(&slack, event("message.received", data.clone(), "{}"), KvAccess::None).await;
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    assert!(report.decision.is_none());
    let Some(Transformed::Send(request)) = &report.transformed else { panic!("{report:?}") };
    assert_eq!(request.content_type, "application/json", "the default");
    let body: Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(body["text"], "*Budi* (+6281234567890): halo");
    let report = runtime.run(&slack, event("device.status", data.clone(), "{}"), KvAccess::None).await;
    assert_eq!(report.transformed, Some(Transformed::Skip), "{report:?}");
    let report = runtime
        .run(&slack, event("message.received", data.clone(), r#"{"events": 1}"#), KvAccess::None)
        .await;
    assert_eq!(report.outcome, Outcome::Error, "{report:?}");
    assert!(report.error.as_deref().unwrap().starts_with("bad config:"), "{report:?}");

    // A message for a transformation, or an event for an auto-reply plugin, is not run.
    let report = runtime.run(&slack, input(Some("halo"), "{}"), KvAccess::None).await;
    assert_eq!(report.outcome, Outcome::Internal, "{report:?}");
    let echo = prepare(&runtime, "echo");
    let report = runtime.run(&echo, event("message.received", data, "{}"), KvAccess::None).await;
    assert_eq!(report.outcome, Outcome::Internal, "{report:?}");
}

#[tokio::test]
async fn a_0_1_0_component_runs_as_before_beside_newer_ones() {
    let runtime = runtime();
    let old = prepare(&runtime, "echo-v1");
    let new = prepare(&runtime, "echo");
    assert_eq!(old.world(), World::V0_1);
    // The SDK builds 0.3.0 (whose message and decision are 0.2.0's).
    assert_eq!(new.world(), World::V0_3);
    assert!(!new.uses_http(), "echo imports no `http`: the short wall clock");
    assert!(prepare(&runtime, "http-probe").uses_http());
    for prepared in [&old, &new] {
        let report = runtime.run(prepared, input(Some("halo lama"), "{}"), KvAccess::None).await;
        assert_eq!(report.outcome, Outcome::Success, "{report:?}");
        assert_eq!(texts(&report), ["echo: halo lama"]);
        // The decision as the API and the run log show it: what 0.1.0 plugins always gave.
        let shown = serde_json::to_value(report.decision.as_ref().unwrap()).unwrap();
        assert_eq!(
            shown,
            json!({"actions": [{"type": "reply_text", "text": "echo: halo lama"}], "stop": false})
        );
    }
    // A 0.1.0 plugin is given what 0.1.0 has of a message of a newer kind, and answers it.
    let report = runtime.run(&old, location_message("{}"), KvAccess::None).await;
    assert_eq!(texts(&report), ["echo: Toko Sinar"]);
    let report = runtime.run(&old, input(None, "{}"), KvAccess::None).await;
    assert!(texts(&report).is_empty(), "{report:?}");
}

#[tokio::test]
async fn a_0_2_0_plugin_sees_the_kind_and_every_part_of_a_message() {
    let runtime = runtime();
    let prepared = prepare(&runtime, "probe");
    let seen = probe_report(&runtime.run(&prepared, location_message("{}"), KvAccess::None).await);
    assert_eq!(seen["kind"], "location");
    assert_eq!(
        seen["location"],
        json!({"latitude": -6.9175, "longitude": 107.6191, "name": "Toko Sinar", "address": "Jl. Merdeka 1"})
    );
    assert_eq!(
        seen["reply_to"],
        json!({"wa_id": "3EB0AAAA", "id": 41, "sender": "6289876543210", "text": "Kirim lokasi ya"})
    );
    assert_eq!(seen["mentions"], json!(["6289876543210"]));
    assert_eq!(seen["media"], Value::Null);

    let mut contact = input(None, "{}");
    contact.message.kind = "contact".into();
    contact.message.contacts = vec![ContactCard { name: "Ani".into(), phone: "6281111111111".into() }];
    let seen = probe_report(&runtime.run(&prepared, contact, KvAccess::None).await);
    assert_eq!(
        (seen["kind"].clone(), seen["contacts"].clone()),
        (json!("contact"), json!([{"name": "Ani", "phone": "6281111111111"}]))
    );

    let mut poll = input(Some("Rapat kapan?"), "{}");
    poll.message.kind = "poll".into();
    poll.message.poll = Some(PollSpec {
        question: "Rapat kapan?".into(),
        options: vec!["Senin".into(), "Selasa".into()],
        multiple: true,
    });
    let seen = probe_report(&runtime.run(&prepared, poll, KvAccess::None).await);
    assert_eq!(
        seen["poll"],
        json!({"question": "Rapat kapan?", "options": ["Senin", "Selasa"], "multiple": true})
    );

    let mut voice = input(None, "{}");
    voice.message.kind = "voice".into();
    voice.message.media = Some(PluginMedia {
        kind: "voice".into(),
        mime_type: Some("audio/ogg; codecs=opus".into()),
        size: Some(4_000),
        download_url: Some("https://gateway.example/media/1".into()),
        ..PluginMedia::default()
    });
    let seen = probe_report(&runtime.run(&prepared, voice, KvAccess::None).await);
    assert_eq!(seen["kind"], "voice");
    assert_eq!(seen["media"]["download_url"], "https://gateway.example/media/1");
    assert_eq!(seen["media"]["size"], 4_000);

    // A kind the 0.2.0 world does not name reaches it as `unsupported`.
    let mut later = input(None, "{}");
    later.message.kind = "event".into();
    assert_eq!(probe_report(&runtime.run(&prepared, later, KvAccess::None).await)["kind"], "unsupported");
}

#[tokio::test]
async fn a_0_2_0_plugin_replies_with_a_location_and_contacts_reacts_marks_read_and_quotes() {
    let runtime = runtime();
    let prepared = prepare(&runtime, "probe");
    let config = json!({
        "report": false,
        "location": {"latitude": -6.2, "longitude": 106.8, "name": "Kantor"},
        "contacts": [{"name": "CS Toko", "phone": "6281222333444"}],
        "react": "👍",
        "mark_read": true,
        "quote": true,
        "stop": true,
    });
    let report = runtime.run(&prepared, location_message(&config.to_string()), KvAccess::None).await;
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    let decision = report.decision.unwrap();
    assert!(decision.quote && decision.stop);
    assert_eq!(
        decision.actions,
        [
            Action::ReplyLocation {
                location: Location {
                    latitude: -6.2,
                    longitude: 106.8,
                    name: Some("Kantor".into()),
                    address: None
                }
            },
            Action::ReplyContacts {
                contacts: vec![ContactCard { name: "CS Toko".into(), phone: "6281222333444".into() }]
            },
            Action::React { emoji: "👍".into() },
            Action::MarkRead,
        ]
    );
}

#[tokio::test]
async fn keyword_router_answers_with_a_location() {
    let runtime = runtime();
    let prepared = prepare(&runtime, "keyword-router");
    let config = json!({"routes": [{"keyword": "alamat", "reply": "Ini lokasi kami:",
        "location": {"latitude": -6.9175, "longitude": 107.6191, "name": "Toko Sinar"}}], "quote": true});
    let report =
        runtime.run(&prepared, input(Some("Minta ALAMAT"), &config.to_string()), KvAccess::None).await;
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    let decision = report.decision.unwrap();
    assert!(decision.quote);
    assert_eq!(decision.actions[0], Action::ReplyText { text: "Ini lokasi kami:".into() });
    assert_eq!(
        decision.actions[1],
        Action::ReplyLocation {
            location: Location {
                latitude: -6.9175,
                longitude: 107.6191,
                name: Some("Toko Sinar".into()),
                address: None
            }
        }
    );
}

#[tokio::test]
async fn the_output_caps_hold_for_the_new_actions() {
    let cfg = config();
    let runtime = runtime_with(&cfg);
    let prepared = prepare(&runtime, "probe");
    let run = |config: Value| {
        let (runtime, prepared) = (runtime.clone(), prepared.clone());
        async move {
            let mut config = config;
            config["report"] = json!(false);
            runtime.run(&prepared, input(Some("x"), &config.to_string()), KvAccess::None).await
        }
    };
    let long = "n".repeat(cfg.max_reply_bytes + 1);
    let limit = cfg.max_reply_bytes;
    let cases = [
        (
            json!({"location": {"latitude": 0, "longitude": 0, "name": long}}),
            Outcome::OutputTooLarge,
            format!("action 1: the location name is {} bytes, the limit is {limit}", limit + 1),
        ),
        (
            json!({"location": {"latitude": 0, "longitude": 0, "address": long}}),
            Outcome::OutputTooLarge,
            "the location address is".to_string(),
        ),
        (
            json!({"contacts": (0..11).map(|i| json!({"name": format!("C{i}"), "phone": "62812"})).collect::<Vec<_>>()}),
            Outcome::OutputTooLarge,
            "11 contact cards, the limit is 10".to_string(),
        ),
        (
            json!({"react": "👍".repeat(20)}),
            Outcome::OutputTooLarge,
            "the reaction is 80 bytes, the limit is 64".to_string(),
        ),
        (json!({"react": "oke"}), Outcome::InvalidOutput, "the reaction is not valid".to_string()),
        (
            json!({"location": {"latitude": 91, "longitude": 0}}),
            Outcome::InvalidOutput,
            "latitude".to_string(),
        ),
    ];
    for (config, outcome, reason) in cases {
        let report = run(config.clone()).await;
        assert_eq!(report.outcome, outcome, "{config}: {report:?}");
        assert!(report.error.as_deref().unwrap_or_default().contains(&reason), "{config}: {report:?}");
        assert!(report.decision.is_none());
    }
    // The action cap counts reactions and read marks like replies.
    let capped = PluginsConfig { max_actions: 1, ..config() };
    let runtime = runtime_with(&capped);
    let prepared = prepare(&runtime, "probe");
    let config = json!({"report": false, "react": "👍", "mark_read": true}).to_string();
    let report = runtime.run(&prepared, input(Some("x"), &config), KvAccess::None).await;
    assert_eq!(report.outcome, Outcome::OutputTooLarge, "{report:?}");
}

#[test]
fn every_worlds_imports_are_provided() {
    for version in ["0.1.0", "0.2.0", "0.3.0"] {
        let component = wat(&format!(
            r#"(component
                (import "wa-gateway:plugin/clock@{version}" (instance
                    (export "now-ms" (func (result s64)))))
            )"#
        ));
        let reason = runtime().compile(&component).err().expect("refused").reason().to_string();
        // Its imports are linked; what it lacks is the export.
        assert!(reason.contains("does not export `handle`"), "{version}: {reason}");
    }
}

// ----- adversarial plugins -----

#[tokio::test]
async fn spin_forever_is_stopped_at_its_cpu_deadline() {
    // A generous wall clock: on a busy machine the lowered run gets little CPU, and the subject
    // here is the CPU deadline.
    let cfg = config();
    let started = Instant::now();
    let report = run(&runtime_with(&cfg), "spin-forever", "hi").await;
    let took = started.elapsed();
    assert_eq!(report.outcome, Outcome::Timeout, "{report:?}");
    assert!(report.decision.is_none());
    assert_eq!(report.lowered, can_lower_priority(), "a long run steps back where it can");
    let error = report.error.as_deref().unwrap();
    assert!(error.contains(&format!("CPU deadline of {} ms", cfg.cpu_ms)), "{error}");
    // Cut off at its deadline, not whenever it pleases (100x the CPU deadline is far more
    // than any scheduling noise).
    let bound = Duration::from_millis(100 * cfg.cpu_ms);
    assert!(took < bound && report.latency < bound, "took {took:?}");
}

#[tokio::test]
async fn quick_runs_keep_their_priority_and_lowering_can_be_turned_off() {
    let report = run(&runtime(), "echo", "hi").await;
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    assert!(!report.lowered, "a run of microseconds is never lowered");
    let never = PluginsConfig { lower_priority_after_ms: 0, ..config() };
    let report = run(&runtime_with(&never), "spin-forever", "hi").await;
    assert_eq!(report.outcome, Outcome::Timeout, "{report:?}");
    assert!(!report.lowered, "lower_priority_after_ms = 0 never lowers");
}

#[tokio::test]
async fn a_wall_clock_timeout_shorter_than_the_cpu_deadline_stops_it_too() {
    let cfg = PluginsConfig { cpu_ms: 60_000, timeout_ms: 100, ..config() };
    let started = Instant::now();
    let report = run(&runtime_with(&cfg), "spin-forever", "hi").await;
    assert_eq!(report.outcome, Outcome::Timeout, "{report:?}");
    let error = report.error.unwrap();
    assert!(error.contains("wall-clock timeout of 100 ms"), "{error}");
    assert!(started.elapsed() < Duration::from_millis(500), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn memory_hog_is_stopped_at_the_memory_limit() {
    let cfg = config();
    let report = run(&runtime_with(&cfg), "memory-hog", "hi").await;
    assert_eq!(report.outcome, Outcome::Memory, "{report:?}");
    let error = report.error.unwrap();
    assert!(error.contains(&format!("memory limit of {} bytes", cfg.memory_limit)), "{error}");
}

#[tokio::test]
async fn the_memory_limit_comes_from_the_config() {
    let cfg = PluginsConfig { memory_limit: 2 << 20, ..config() };
    let runtime = runtime_with(&cfg);
    assert_eq!(texts(&run(&runtime, "echo", "kecil").await), ["echo: kecil"]);
    let report = run(&runtime, "memory-hog", "hi").await;
    assert_eq!(report.outcome, Outcome::Memory, "{report:?}");
    assert!(report.error.unwrap().contains("memory limit of 2097152 bytes"));
    // A component whose memory starts above the limit is refused at upload.
    let tiny = PluginsConfig { memory_limit: 64 << 10, ..config() };
    let reason = runtime_with(&tiny).compile(&plugin("echo")).err().expect("refused").reason().to_string();
    assert!(reason.contains("more than the plugin limits allow"), "{reason}");
    assert!(reason.contains("minimum byte size of"), "{reason}");
}

#[tokio::test]
async fn trap_is_recorded_as_a_trap() {
    let report = run(&runtime(), "trap", "hi").await;
    assert_eq!(report.outcome, Outcome::Trap, "{report:?}");
    assert!(report.decision.is_none());
    let error = report.error.unwrap();
    assert!(error.contains("unreachable"), "{error}");
}

#[tokio::test]
async fn flood_output_is_refused_whole_as_too_large() {
    let report = run(&runtime(), "flood-output", "hi").await;
    assert_eq!(report.outcome, Outcome::OutputTooLarge, "{report:?}");
    assert!(report.decision.is_none());
    assert!(report.error.is_some());
}

#[tokio::test]
async fn a_failed_run_leaves_the_runtime_fit_for_the_next() {
    let runtime = runtime();
    for name in ["spin-forever", "memory-hog", "trap", "flood-output"] {
        let report = run(&runtime, name, "hi").await;
        assert_ne!(report.outcome, Outcome::Success, "{name}");
        assert_eq!(texts(&run(&runtime, "echo", "still here").await), ["echo: still here"], "after {name}");
    }
}

// ----- uploads that are not plugins -----

#[test]
fn junk_bytes_are_refused_with_a_reason() {
    let reason = runtime().compile(b"this is not WebAssembly").err().expect("refused").reason().to_string();
    assert!(reason.contains("not a WebAssembly binary"), "{reason}");
}

#[test]
fn a_core_module_is_refused_as_not_a_component() {
    let module = wat("(module (func (export \"handle\")))");
    let reason = runtime().compile(&module).err().expect("refused").reason().to_string();
    assert!(reason.contains("core WebAssembly module, not a component"), "{reason}");
}

#[test]
fn an_empty_component_is_refused_for_lacking_handle() {
    let reason = runtime().compile(&wat("(component)")).err().expect("refused").reason().to_string();
    assert!(reason.contains("does not export `handle`"), "{reason}");
}

#[test]
fn a_component_importing_wasi_is_refused_naming_the_import() {
    let component = wat(r#"(component
            (import "wasi:cli/environment@0.2.6" (instance
                (export "get-arguments" (func (result (list string))))))
        )"#);
    let reason = runtime().compile(&component).err().expect("refused").reason().to_string();
    assert!(reason.contains("`wasi:cli/environment@0.2.6`"), "{reason}");
    assert!(reason.contains("does not provide"), "{reason}");
}

#[test]
fn a_handle_of_another_type_is_refused() {
    let component = wat(r#"(component
            (core module $m (func (export "h") (result i32) i32.const 0))
            (core instance $i (instantiate $m))
            (func (export "handle") (result u32) (canon lift (core func $i "h")))
        )"#);
    let reason = runtime().compile(&component).err().expect("refused").reason().to_string();
    assert!(reason.contains("does not have the type"), "{reason}");
}

#[test]
fn an_import_of_the_gateway_with_another_shape_is_refused() {
    let component = wat(r#"(component
            (import "wa-gateway:plugin/clock@0.1.0" (instance
                (export "now-ms" (func (result string)))))
        )"#);
    let reason = runtime().compile(&component).err().expect("refused").reason().to_string();
    assert!(reason.contains("imports do not match"), "{reason}");
}

#[test]
fn an_upload_over_the_size_cap_is_refused() {
    let cfg = PluginsConfig { max_size: 1024, ..config() };
    let reason = runtime_with(&cfg).compile(&plugin("echo")).err().expect("refused").reason().to_string();
    assert!(reason.contains("the limit is 1024"), "{reason}");
}

// ----- stored artefacts -----

#[tokio::test]
async fn a_stored_artefact_loads_without_compiling_again() {
    let runtime = runtime();
    let wasm = plugin("echo");
    let compiled = runtime.compile(&wasm).expect("compiles");
    // A restart: a new runtime with the same settings.
    let restarted = Runtime::new(&config()).unwrap();
    assert_eq!(restarted.engine_id(), runtime.engine_id());
    let loaded = restarted.load(&wasm, Some((&compiled.artefact, runtime.engine_id()))).expect("loads");
    assert!(loaded.recompiled.is_none());
    let report = restarted.run(&loaded.prepared, input(Some("again"), "{}"), KvAccess::None).await;
    assert_eq!(texts(&report), ["echo: again"]);
}

#[tokio::test]
async fn an_artefact_from_another_engine_or_damaged_is_compiled_again() {
    let runtime = runtime();
    let wasm = plugin("echo");
    let artefact = runtime.compile(&wasm).expect("compiles").artefact;
    let other = runtime.load(&wasm, Some((&artefact, "wasmtime-1.0.0-0000000000000000"))).expect("loads");
    let recompiled = other.recompiled.expect("compiled again");
    assert!(!recompiled.is_empty());
    let damaged = runtime.load(&wasm, Some((b"not an artefact", runtime.engine_id()))).expect("loads");
    assert!(damaged.recompiled.is_some());
    let none = runtime.load(&wasm, None).expect("loads");
    assert!(none.recompiled.is_some());
    for loaded in [damaged, none] {
        let report = runtime.run(&loaded.prepared, input(Some("x"), "{}"), KvAccess::None).await;
        assert_eq!(texts(&report), ["echo: x"]);
    }
    // A recompiled artefact loads as is next time.
    assert!(runtime.load(&wasm, Some((&recompiled, runtime.engine_id()))).unwrap().recompiled.is_none());
}

// ----- `wa-gateway plugin check` -----

#[test]
fn plugin_check_lists_a_plugins_imports_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.wasm");
    std::fs::write(&path, plugin("echo")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wa-gateway"))
        .args(["plugin", "check"])
        .arg(&path)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("exports:\n  handle: func(message: record { id: s64"), "{stdout}");
    assert!(stdout.contains("world: wa-gateway:plugin/auto-reply@0.3.0"), "{stdout}");
    assert!(stdout.contains("world: yes"), "{stdout}");
}

#[test]
fn plugin_check_names_the_world_version_of_a_0_1_0_component() {
    let runtime = runtime();
    let listing = wa_gateway::plugins::check::describe(&runtime, &plugin("echo-v1")).expect("a plugin");
    assert!(listing.contains("imports:\n  wa-gateway:plugin/types@0.1.0"), "{listing}");
    assert!(listing.ends_with("fits the wa-gateway:plugin/auto-reply@0.1.0 world: yes\n"), "{listing}");
    let found = wa_gateway::plugins::check::inspect(&runtime, &plugin("probe"));
    assert_eq!(found.world, Some(World::V0_3));
}

#[test]
fn plugin_check_refuses_what_is_not_a_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.wasm");
    std::fs::write(&path, wat("(component)")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wa-gateway"))
        .args(["plugin", "check"])
        .arg(&path)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("exports: none"), "{stdout}");
    assert!(stdout.contains("world: no"), "{stdout}");
    assert!(stderr.contains("does not export `handle`"), "{stderr}");
}

// ----- the key-value store, on each backend -----

use backend::Backend;

/// A tenant with one plugin row per name; their ids.
async fn tenant_with_plugins(db: &Db, email: &str, names: &[&str]) -> (i64, Vec<i64>) {
    let tenant = db
        .create_tenant(
            &NewTenant { name: "Toko", email, package: "premium", password_hash: None },
            &format!("wag_{}", &email[..4]),
            &format!("hash-{email}"),
        )
        .await
        .expect("tenant");
    let mut ids = Vec::new();
    for name in names {
        let new = NewPlugin {
            name: name.to_string(),
            sha256: "0".repeat(64),
            wasm: vec![0],
            compiled: vec![0],
            engine: "test".into(),
            enabled: true,
            devices: vec![],
            run_order: 0,
            config: "{}".into(),
            kind: "auto_reply".into(),
        };
        match db.create_plugin(tenant.id, &new, None).await.expect("plugin row") {
            Some(row) => ids.push(row.id),
            None => panic!("over limit"),
        }
    }
    (tenant.id, ids)
}

fn faq_input(tenant: i64, plugin_id: i64, chat: &str, text: &str) -> RunInput {
    let mut input = input(Some(text), "{}");
    input.message.chat = chat.into();
    input.context.tenant_id = tenant;
    input.context.plugin_id = plugin_id;
    input
}

/// The reply of one faq-bot run that must succeed.
async fn faq(runtime: &Runtime, prepared: &Prepared, access: KvAccess, input: RunInput) -> String {
    let report = runtime.run(prepared, input, access).await;
    assert_eq!(report.outcome, Outcome::Success, "{report:?}");
    texts(&report).join("\n")
}

/// The numbers in `text`, in order.
fn numbers(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

async fn faq_bot_counts_grow_across_runs_with_the_store(db: &Db) {
    let runtime = runtime();
    let prepared = prepare(&runtime, "faq-bot");
    let (tenant, ids) = tenant_with_plugins(db, "budi@example.com", &["faq"]).await;
    let store = || KvAccess::Store { db: db.clone(), tenant, plugin_id: ids[0] };
    let chat = "6281111111111@s.whatsapp.net";
    let first = faq(&runtime, &prepared, store(), faq_input(tenant, ids[0], chat, "jam buka?")).await;
    let second = faq(&runtime, &prepared, store(), faq_input(tenant, ids[0], chat, "jam buka?")).await;
    assert_ne!(first, second, "the count did not change");
    let (keys, bytes) = db.plugin_kv_usage(tenant, ids[0]).await.unwrap();
    assert!(keys >= 1 && bytes > 0, "{keys} keys, {bytes} bytes");
    // A dry run sees the count but does not move it.
    let dry = || KvAccess::ReadOnly { db: db.clone(), tenant, plugin_id: ids[0] };
    let dry1 = faq(&runtime, &prepared, dry(), faq_input(tenant, ids[0], chat, "jam buka?")).await;
    let dry2 = faq(&runtime, &prepared, dry(), faq_input(tenant, ids[0], chat, "jam buka?")).await;
    assert_eq!(dry1, dry2);
    assert_eq!(db.plugin_kv_usage(tenant, ids[0]).await.unwrap(), (keys, bytes));
    let third = faq(&runtime, &prepared, store(), faq_input(tenant, ids[0], chat, "jam buka?")).await;
    assert_eq!(third, dry1, "the dry run answered what the next real run answers");
    assert!(numbers(&second) != numbers(&first) && numbers(&third) != numbers(&second));
}

async fn plugins_and_tenants_do_not_see_each_others_keys(db: &Db) {
    let runtime = runtime();
    let prepared = prepare(&runtime, "faq-bot");
    let (budi, budi_ids) = tenant_with_plugins(db, "budi@example.com", &["faq", "faq2"]).await;
    let (sari, sari_ids) = tenant_with_plugins(db, "sari@example.com", &["faq"]).await;
    let chat = "6281111111111@s.whatsapp.net";
    let store = |tenant, plugin_id| KvAccess::Store { db: db.clone(), tenant, plugin_id };
    let fresh =
        faq(&runtime, &prepared, store(budi, budi_ids[0]), faq_input(budi, budi_ids[0], chat, "q")).await;
    for _ in 0..3 {
        faq(&runtime, &prepared, store(budi, budi_ids[0]), faq_input(budi, budi_ids[0], chat, "q")).await;
    }
    // Budi's other plugin and Sari's plugin start from nothing.
    let other =
        faq(&runtime, &prepared, store(budi, budi_ids[1]), faq_input(budi, budi_ids[1], chat, "q")).await;
    let sari_first =
        faq(&runtime, &prepared, store(sari, sari_ids[0]), faq_input(sari, sari_ids[0], chat, "q")).await;
    assert_eq!(other, fresh);
    assert_eq!(sari_first, fresh);
    // A plugin id of another tenant is never written under this tenant.
    let crossed = KvAccess::Store { db: db.clone(), tenant: sari, plugin_id: budi_ids[0] };
    let report = runtime.run(&prepared, faq_input(sari, budi_ids[0], chat, "q"), crossed).await;
    assert_ne!(report.outcome, Outcome::Success, "{report:?}");
    assert_eq!(db.plugin_kv_usage(sari, budi_ids[0]).await.unwrap(), (0, 0));
    assert_eq!(db.plugin_kv_usage(sari, sari_ids[0]).await.unwrap().0, 1);
}

async fn the_store_enforces_key_value_and_total_limits(db: &Db) {
    let (tenant, ids) = tenant_with_plugins(db, "budi@example.com", &["kv"]).await;
    let limits = KvLimits { max_key_bytes: 8, max_value_bytes: 32, quota_bytes: 64 };
    let db = db.clone();
    let handle = tokio::runtime::Handle::current();
    let plugin_id = ids[0];
    let t = Duration::from_secs(5);
    let access = move || KvAccess::Store { db: db.clone(), tenant, plugin_id };
    let first = access();
    let handle2 = handle.clone();
    let pending = tokio::task::spawn_blocking(move || {
        let mut kv = KvSession::new(first, limits, Some(handle2));
        assert!(matches!(kv.set(String::new(), vec![], t), Err(KvError::InvalidKey(_))));
        assert!(matches!(kv.set("123456789".into(), vec![], t), Err(KvError::InvalidKey(_))));
        assert!(matches!(kv.set("a".into(), vec![0; 33], t), Err(KvError::QuotaExceeded(_))));
        kv.set("a".into(), vec![1; 32], t).unwrap(); // 33 bytes
        kv.set("b".into(), vec![2; 20], t).unwrap(); // 54
        assert!(matches!(kv.set("c".into(), vec![3; 10], t), Err(KvError::QuotaExceeded(_)))); // 65
        kv.into_pending().expect("writes to apply")
    })
    .await
    .unwrap();
    pending.apply().await.unwrap();
    let check = access();
    let (db, handle2) = (check.clone(), handle.clone());
    tokio::task::spawn_blocking(move || {
        // A new run counts what is stored: 54 bytes.
        let mut kv = KvSession::new(db, limits, Some(handle2));
        assert_eq!(kv.get("b", t), Ok(Some(vec![2; 20])));
        assert!(matches!(kv.set("c".into(), vec![3; 10], t), Err(KvError::QuotaExceeded(_))));
        // Replacing a value counts only the difference; deleting frees room.
        kv.set("a".into(), vec![1; 20], t).unwrap(); // 42
        kv.set("c".into(), vec![3; 10], t).unwrap(); // 53
        kv.delete("b".into(), t).unwrap(); // 32
        kv.set("d".into(), vec![4; 30], t).unwrap(); // 63
        assert_eq!(kv.get("b", t), Ok(None));
        kv.into_pending().expect("writes").apply()
    })
    .await
    .unwrap()
    .await
    .unwrap();
    let KvAccess::Store { db, .. } = access() else { unreachable!() };
    assert_eq!(db.plugin_kv_usage(tenant, plugin_id).await.unwrap(), (3, 63));
    assert_eq!(db.plugin_kv_get(tenant, plugin_id, "b").await.unwrap(), None);
    assert_eq!(db.plugin_kv_get(tenant, plugin_id, "c").await.unwrap(), Some(vec![3; 10]));
}

async fn a_plugin_over_its_quota_fails_and_keeps_its_store(db: &Db) {
    let cfg = PluginsConfig { kv_quota_bytes: 4, ..config() };
    let runtime = runtime_with(&cfg);
    let prepared = prepare(&runtime, "faq-bot");
    let (tenant, ids) = tenant_with_plugins(db, "budi@example.com", &["faq"]).await;
    let store = KvAccess::Store { db: db.clone(), tenant, plugin_id: ids[0] };
    let report = runtime.run(&prepared, faq_input(tenant, ids[0], "1@s.whatsapp.net", "q"), store).await;
    assert_ne!(report.outcome, Outcome::Success, "{report:?}");
    assert!(report.error.unwrap_or_default().to_lowercase().contains("quota"));
    assert_eq!(db.plugin_kv_usage(tenant, ids[0]).await.unwrap(), (0, 0));
}

async fn a_run_that_fails_after_writing_leaves_the_store_as_it_was(db: &Db) {
    // faq-bot counts, then replies: with no action allowed its decision is refused after
    // the write was buffered.
    let cfg = PluginsConfig { max_actions: 0, ..config() };
    let runtime = runtime_with(&cfg);
    let prepared = prepare(&runtime, "faq-bot");
    let (tenant, ids) = tenant_with_plugins(db, "budi@example.com", &["faq"]).await;
    let store = KvAccess::Store { db: db.clone(), tenant, plugin_id: ids[0] };
    let report = runtime.run(&prepared, faq_input(tenant, ids[0], "1@s.whatsapp.net", "q"), store).await;
    assert_eq!(report.outcome, Outcome::OutputTooLarge, "{report:?}");
    assert_eq!(db.plugin_kv_usage(tenant, ids[0]).await.unwrap(), (0, 0));
}

/// For each story, `sqlite::<story>` and `postgres::<story>` (ignored when the
/// tests were built without a server to run on).
macro_rules! kv_stories {
    ($($story:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    let backend = super::Backend::sqlite().await;
                    super::$story(&backend.db).await;
                    backend.db.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(postgres_tests), ignore = "needs PostgreSQL: set GATEWAY_TEST_POSTGRES_URL")]
                async fn $story() {
                    let backend = super::Backend::postgres().await.unwrap_or_else(|| {
                        panic!("{} is not set: this test needs PostgreSQL", super::pg_support::ENV)
                    });
                    super::$story(&backend.db).await;
                    backend.db.close().await;
                }
            )*
        }
    };
}

kv_stories!(
    faq_bot_counts_grow_across_runs_with_the_store,
    plugins_and_tenants_do_not_see_each_others_keys,
    the_store_enforces_key_value_and_total_limits,
    a_plugin_over_its_quota_fails_and_keeps_its_store,
    a_run_that_fails_after_writing_leaves_the_store_as_it_was,
);

//! Message history (inbound and outbound), the per-device outbound queue, and status history.
//!
//! Outbound messages are rows with status `queued` until the device's sender takes them, so the
//! queue survives restarts; inbound messages are unique per (device, WhatsApp id).

use serde::{Deserialize, Serialize};
use sqlx::SqlitePool;

use super::activity::NewActivity;
use super::{now_ms, reader, writer, Db, DbResult, Dialect};
pub use crate::content::Details;

mod details;
mod media;
mod queue;
pub use queue::Claim;

pub use details::MessageRef;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MessageRow {
    pub id: i64,
    pub user_id: i64,
    pub device_id: i64,
    pub device_phone: String,
    pub direction: String,
    pub chat: String,
    pub sender: String,
    pub recipient: String,
    pub text: Option<String>,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub status: String,
    pub wa_id: Option<String>,
    pub push_name: Option<String>,
    pub is_group: bool,
    /// [`MediaMeta`] as JSON; read it with [`MessageRow::media_meta`].
    pub media: Option<String>,
    pub error: Option<String>,
    pub source: String,
    pub attempts: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// [`Details`] as JSON; read it with [`MessageRow::details`].
    pub details: Option<String>,
    /// Where the media bytes are: `pending`, `stored`, `failed`, `expired` or `skipped`.
    pub media_state: Option<String>,
    /// The sender's LID (`…@lid`) of an inbound message WhatsApp addressed by LID.
    pub sender_lid: Option<String>,
}

/// Media metadata stored with a message (`messages.media`, JSON).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MediaMeta {
    pub kind: String,
    pub mime: Option<String>,
    pub size: Option<u64>,
    pub filename: Option<String>,
    pub caption: Option<String>,
    /// Where the bytes wait while the message is queued.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub blob_id: Option<i64>,
    /// The object in the media store holding the bytes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub key: Option<String>,
    /// Why the download failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// SHA-256 of the bytes kept, hex.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
    /// What the driver needs to download the bytes again (its own format).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source: Option<String>,
}

impl MessageRow {
    /// The media this message carries, read from the `media` column.
    pub fn media_meta(&self) -> Option<MediaMeta> {
        self.media.as_deref().and_then(|m| serde_json::from_str(m).ok())
    }

    /// What the message carries besides text and media, and what happened to it since.
    pub fn details(&self) -> Details {
        Details::from_json(self.details.as_deref())
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StatusEventRow {
    pub status: String,
    pub detail: Option<String>,
    pub created_at: i64,
}

/// A message to store.
#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    pub user_id: i64,
    pub device_id: i64,
    /// `in` or `out`.
    pub direction: String,
    pub chat: String,
    pub sender: String,
    pub recipient: String,
    pub text: Option<String>,
    pub kind: String,
    pub status: String,
    pub wa_id: Option<String>,
    pub push_name: Option<String>,
    /// The sender's LID JID when WhatsApp addressed an inbound message by LID.
    pub sender_lid: Option<String>,
    pub is_group: bool,
    /// JSON: media metadata (and, for queued outbound media, where the bytes are).
    pub media: Option<String>,
    /// What produced it: `api`, `auto_reply`, `plugin`, `webhook`, `scheduled`, `whatsapp`.
    pub source: String,
    pub idempotency_key: Option<String>,
    /// Set to store the message already in a final state (e.g. `failed` with its reason).
    pub error: Option<String>,
    /// [`Details`] as JSON.
    pub details: Option<String>,
    /// `pending` when the media is to be downloaded, `skipped` when downloads are off.
    pub media_state: Option<String>,
}

/// Filters of the history list and export. Every field narrows the result.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub device_id: Option<i64>,
    /// Only messages of these devices (those of an API key limited to some devices).
    pub devices: Option<Vec<i64>>,
    pub direction: Option<String>,
    pub chat: Option<String>,
    /// The sender: a phone number's digits, or a LID JID.
    pub sender: Option<String>,
    pub q: Option<String>,
    pub status: Option<String>,
    /// The message's `type` (`text`, `image`, `location`, ...).
    pub kind: Option<String>,
    /// Unix ms, inclusive.
    pub since: Option<i64>,
    /// Unix ms, exclusive.
    pub until: Option<i64>,
    /// Only rows after this `(created_at, id)` in the newest-first order (keyset paging for
    /// exports).
    pub before: Option<(i64, i64)>,
}

pub(crate) const COLUMNS: &str =
    "SELECT m.id, m.user_id, m.device_id, d.phone AS device_phone, m.direction, m.chat, \
     m.sender, m.recipient, m.text, m.type, m.status, m.wa_id, m.push_name, m.is_group, m.media, m.error, \
     m.source, m.attempts, m.created_at, m.updated_at, m.details, m.media_state, m.sender_lid";

/// The rows of the history with their device: the tenant's indexes find them.
pub(crate) const FROM_MESSAGES: &str = "FROM messages m JOIN devices d ON d.id = m.device_id";

/// The same, found through the text search's trigram index (SQLite): `CROSS JOIN` fixes the
/// join order, so SQLite walks the index's matches and looks each message up by id.
const FROM_SEARCH: &str = "FROM messages_search s CROSS JOIN messages m ON m.id = s.rowid \
     CROSS JOIN devices d ON d.id = m.device_id";

/// The history's order, newest first. `created_at` is set when the row is stored, so this is
/// the id order except between rows stored concurrently; sorting by time lets one index serve a
/// filter and a time range together.
const ORDER: &str = "ORDER BY m.created_at DESC, m.id DESC";

/// Matching rows counted for a history page's `total` before it becomes a lower bound.
pub const TOTAL_COUNT_CAP: i64 = 1_000;

/// A page of history with the number of matching rows.
#[derive(Debug, Clone)]
pub struct MessagePage {
    pub rows: Vec<MessageRow>,
    /// The number of matching rows, or a lower bound when `exact` is false.
    pub total: i64,
    pub exact: bool,
}

enum Arg {
    I64(i64),
    Str(String),
}

/// The shortest text search the trigram index serves. FTS5's trigram MATCH finds nothing for
/// fewer characters and pg_trgm reads its whole index, so shorter searches check `LIKE` on
/// every row of the tenant's history (or of the narrower filter's index), as before the index.
const SEARCH_MIN_CHARS: usize = 3;

/// Trigram-index matches (over all tenants) below which a SQLite search reads every match and
/// sorts them: at most this many lookups by id, about 5 ms. Past it, walking the history (or
/// the matches from the newest id back) fills a page sooner, because matches are common.
const SEARCH_INDEX_MATCHES: i64 = 2_000;

/// Where a history query finds its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The tenant's indexes, newest first; a text search is checked row by row.
    Scan,
    /// Every match of the trigram index `messages_search` (SQLite), looked up by id.
    Search,
    /// The trigram index's matches from the newest id back, until the page is full (SQLite,
    /// pages only: see `recent_matches`).
    Recent,
}

/// How a history page and its capped count find their rows.
#[derive(Debug, Clone, Copy)]
struct Plan {
    page: Source,
    count: Source,
}

/// Whether the trigram index can answer this text search.
fn indexable(q: &str) -> bool {
    // A NUL would end the FTS5 query string early; SQLite's LIKE handles it.
    q.chars().count() >= SEARCH_MIN_CHARS && !q.contains('\0')
}

/// `q` as one FTS5 phrase: inside double quotes everything but a doubled quote is literal, so
/// `*`, `OR`, `NEAR(`, `:` and `-` are text. The trigram tokenizer makes the phrase "these
/// characters in a row, in any case".
fn fts5_phrase(q: &str) -> String {
    format!("\"{}\"", q.replace('"', "\"\""))
}

impl MessageFilter {
    /// Renders the WHERE clause (after the tenant condition `$1`) and its arguments, for rows
    /// found through `source` (`FROM_SEARCH` names the trigram index `s`).
    fn render(&self, dialect: Dialect, source: Source) -> (String, Vec<Arg>) {
        let mut sql = String::from(" WHERE m.user_id = $1");
        let mut args = Vec::new();
        let mut push = |cond: &str, arg: Arg, sql: &mut String| {
            args.push(arg);
            sql.push_str(&cond.replace('?', &format!("${}", args.len() + 1)));
        };
        // SQLite keeps no statistics unless ANALYZE ran, and then takes any index that matches an
        // equality, even a direction's (half the rows) next to a chat's (a few hundred). So on
        // SQLite only the most selective equality (chat, then status, device, direction) may use
        // its index; the others are written `+m.x`, SQLite's "no index for this term".
        let lead =
            [self.chat.is_some(), self.status.is_some(), self.device_id.is_some(), self.direction.is_some()]
                .iter()
                .position(|present| *present);
        let col = |rank: usize, name: &str| -> String {
            match dialect {
                Dialect::Sqlite if lead != Some(rank) => format!("+m.{name}"),
                _ => format!("m.{name}"),
            }
        };
        if let Some(v) = &self.chat {
            push(&format!(" AND {} = ?", col(0, "chat")), Arg::Str(v.clone()), &mut sql);
        }
        if let Some(v) = &self.status {
            push(&format!(" AND {} = ?", col(1, "status")), Arg::Str(v.clone()), &mut sql);
        }
        if let Some(v) = self.device_id {
            push(&format!(" AND {} = ?", col(2, "device_id")), Arg::I64(v), &mut sql);
        }
        if let Some(v) = &self.direction {
            push(&format!(" AND {} = ?", col(3, "direction")), Arg::Str(v.clone()), &mut sql);
        }
        // Never the leading index: a key's devices are most of the tenant's history.
        let column = if dialect == Dialect::Sqlite { "+m.device_id" } else { "m.device_id" };
        sql.push_str(&super::device_scope(column, self.devices.as_deref(), false));
        if let Some(v) = &self.sender {
            // Never the leading index (there is none by sender): the tenant's history is walked.
            let column = if dialect == Dialect::Sqlite { "+m.sender" } else { "m.sender" };
            push(&format!(" AND {column} = ?"), Arg::Str(v.clone()), &mut sql);
        }
        if let Some(v) = &self.kind {
            // Never the leading index: a type is common, any other filter narrows more.
            let column = if dialect == Dialect::Sqlite { "+m.type" } else { "m.type" };
            push(&format!(" AND {column} = ?"), Arg::Str(v.clone()), &mut sql);
        }
        if let Some(v) = self.since {
            push(" AND m.created_at >= ?", Arg::I64(v), &mut sql);
        }
        if let Some(v) = self.until {
            push(" AND m.created_at < ?", Arg::I64(v), &mut sql);
        }
        if let Some(q) = &self.q {
            // The LIKE decides on both paths: the trigram index only narrows the rows to check
            // (its case folding covers more than LIKE's ASCII one), so results do not depend on
            // the path taken.
            if source == Source::Search {
                push(" AND s.messages_search MATCH ?", Arg::Str(fts5_phrase(q)), &mut sql);
            }
            let escaped = q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            let cond = match dialect {
                Dialect::Sqlite => " AND m.text LIKE ? ESCAPE '\\'",
                Dialect::Postgres => " AND m.text ILIKE ? ESCAPE '\\'",
            };
            push(cond, Arg::Str(format!("%{escaped}%")), &mut sql);
        }
        if let Some((created_at, id)) = self.before {
            args.push(Arg::I64(created_at));
            args.push(Arg::I64(id));
            let n = args.len() + 1;
            sql.push_str(&format!(" AND (m.created_at, m.id) < (${}, ${n})", n - 1));
        }
        (sql, args)
    }

    /// A page's query without its LIMIT, and its arguments (`Recent` is read as `Scan`).
    fn page_sql(&self, dialect: Dialect, source: Source) -> (String, Vec<Arg>) {
        let from = match source {
            Source::Search => FROM_SEARCH,
            Source::Scan | Source::Recent => FROM_MESSAGES,
        };
        let (cond, args) = self.render(dialect, source);
        (format!("{COLUMNS} {from}{cond} {ORDER}"), args)
    }
}

macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::I64(v) => q.bind(*v),
                Arg::Str(s) => q.bind(s.clone()),
            };
        }
        q
    }};
}

/// A page of a text search with many matches (SQLite): the trigram index's matches from the
/// newest id back, `offset + limit` of them, sorted into the history's order.
///
/// Ids follow `created_at` except for rows stored concurrently (the time is taken before the
/// insert), so a match with an older id than all those read may still sort above the last of
/// them. Such rows are found through the time index: among the tenant's rows from that time
/// on, only the ones with an older id are read. The page is then exact.
async fn recent_matches(
    pool: &SqlitePool,
    tenant: i64,
    filter: &MessageFilter,
    limit: i64,
    offset: i64,
) -> DbResult<Vec<MessageRow>> {
    let wanted = offset.saturating_add(limit);
    let (cond, args) = filter.render(Dialect::Sqlite, Source::Search);
    let sql = format!("{COLUMNS} {FROM_SEARCH}{cond} ORDER BY s.rowid DESC LIMIT ${}", args.len() + 2);
    let mut rows: Vec<MessageRow> =
        bind_args!(sqlx::query_as(&sql).bind(tenant), &args).bind(wanted).fetch_all(pool).await?;
    let last = rows.iter().map(|r| (r.created_at, r.id)).min();
    let oldest_id = rows.iter().map(|r| r.id).min();
    // Fewer than wanted: those are all the matches.
    if let (true, Some((created_at, id)), Some(oldest_id)) = (rows.len() as i64 == wanted, last, oldest_id) {
        let (cond, mut args) = filter.render(Dialect::Sqlite, Source::Scan);
        let n = args.len();
        // `+m.id`: the time index finds these rows; the id is checked in it before the row is read.
        let sql = format!(
            "{COLUMNS} {FROM_MESSAGES}{cond} AND +m.id < ${} AND m.created_at >= ${} \
             AND (m.created_at > ${} OR m.id > ${})",
            n + 2,
            n + 3,
            n + 3,
            n + 4
        );
        args.extend([Arg::I64(oldest_id), Arg::I64(created_at), Arg::I64(id)]);
        rows.extend(bind_args!(sqlx::query_as(&sql).bind(tenant), &args).fetch_all(pool).await?);
    }
    rows.sort_unstable_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));
    Ok(rows
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(0))
        .take(usize::try_from(limit).unwrap_or(0))
        .collect())
}

/// The monthly message allowance a new outbound message takes one message of, in the
/// transaction that stores it.
#[derive(Debug, Clone, Copy)]
pub struct Allowance<'a> {
    /// The month, `YYYY-MM`.
    pub period: &'a str,
    /// Messages allowed in it; `None` is unlimited.
    pub limit: Option<i64>,
}

/// What [`Db::insert_outbound`] did.
#[derive(Debug)]
pub enum Stored {
    /// Stored now.
    New(MessageRow),
    /// An earlier message with the same idempotency key: nothing new was stored or counted.
    Existing(MessageRow),
    /// The allowance was used up: nothing was stored.
    OverLimit,
}

/// What one insert did inside its transaction.
enum Inserted {
    New(i64),
    /// Already stored under this (device, direction, WhatsApp id).
    Duplicate,
    OverLimit,
}

impl Db {
    /// Stores an outbound message, taking one message of `allowance` in the same transaction
    /// (so a message is counted exactly when it is stored), or returns the message stored
    /// earlier with the same idempotency key.
    ///
    /// `activity` is recorded in the same transaction when the message is stored (not for a
    /// repeated key); without a target of its own it names the message (`message:<id>`).
    pub async fn insert_outbound(
        &self,
        m: &NewMessage,
        allowance: Option<Allowance<'_>>,
        activity: Option<&NewActivity>,
    ) -> DbResult<Stored> {
        match self.insert_message(m, allowance, activity).await {
            Ok(Inserted::New(id)) => match self.message(m.user_id, id).await? {
                Some(row) => Ok(Stored::New(row)),
                None => Err(super::DbError::NotFound),
            },
            Ok(Inserted::OverLimit) => Ok(Stored::OverLimit),
            Ok(Inserted::Duplicate) | Err(super::DbError::Conflict(_)) => {
                // A concurrent request with the same key won the race.
                let key = m.idempotency_key.as_deref().unwrap_or_default();
                let existing = self.message_by_idempotency_key(m.user_id, key).await?;
                existing.map(Stored::Existing).ok_or(super::DbError::Conflict("duplicate message".into()))
            }
            Err(e) => Err(e),
        }
    }

    /// Stores an inbound message once: `None` when this (device, WhatsApp id) is already stored.
    pub async fn insert_inbound(&self, m: &NewMessage) -> DbResult<Option<MessageRow>> {
        match self.insert_message(m, None, None).await? {
            Inserted::New(id) => self.message(m.user_id, id).await,
            Inserted::Duplicate | Inserted::OverLimit => Ok(None),
        }
    }

    async fn insert_message(
        &self,
        m: &NewMessage,
        allowance: Option<Allowance<'_>>,
        activity: Option<&NewActivity>,
    ) -> DbResult<Inserted> {
        let now = now_ms();
        let inserted = writer!(self, |p| {
            let mut tx = p.begin().await?;
            if let Some(a) = allowance {
                let taken = sqlx::query(super::tenants::RESERVE_MESSAGES)
                    .bind(m.user_id)
                    .bind(a.period)
                    .bind(1_i64)
                    .bind(a.limit)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if taken != 1 {
                    return Ok(Inserted::OverLimit);
                }
            }
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO messages (user_id, device_id, direction, chat, sender, recipient, text, type, \
                 status, wa_id, push_name, is_group, media, source, idempotency_key, error, created_at, updated_at, \
                 sender_lid, details, media_state) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17, $18, $19, $20) \
                 ON CONFLICT (device_id, direction, wa_id) DO NOTHING RETURNING id",
            )
            .bind(m.user_id)
            .bind(m.device_id)
            .bind(&m.direction)
            .bind(&m.chat)
            .bind(&m.sender)
            .bind(&m.recipient)
            .bind(&m.text)
            .bind(&m.kind)
            .bind(&m.status)
            .bind(&m.wa_id)
            .bind(&m.push_name)
            .bind(m.is_group)
            .bind(&m.media)
            .bind(&m.source)
            .bind(&m.idempotency_key)
            .bind(&m.error)
            .bind(now)
            .bind(&m.sender_lid)
            .bind(&m.details)
            .bind(&m.media_state)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(id) = id {
                sqlx::query("INSERT INTO message_status_history (message_id, status, detail, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(id)
                    .bind(&m.status)
                    .bind(&m.error)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                let inbound = m.direction == "in";
                let name = m.push_name.as_deref().filter(|n| inbound && !m.is_group && !n.trim().is_empty());
                sqlx::query(super::chats::UPSERT_CHAT)
                    .bind(m.device_id)
                    .bind(&m.chat)
                    .bind(m.user_id)
                    .bind(m.is_group)
                    .bind(id)
                    .bind(now)
                    .bind(i64::from(inbound))
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                if let Some(a) = activity {
                    let target = a.target.clone().unwrap_or_else(|| format!("message:{id}"));
                    sqlx::query(super::activity::INSERT_ACTIVITY)
                        .bind(a.user_id)
                        .bind(&a.actor)
                        .bind(&a.action)
                        .bind(target)
                        .bind(&a.detail)
                        .bind(&a.ip)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            match id {
                Some(id) => Inserted::New(id),
                None => Inserted::Duplicate,
            }
        });
        Ok(inserted)
    }

    /// The tenant's message stored with this idempotency key.
    pub async fn message_by_idempotency_key(&self, tenant: i64, key: &str) -> DbResult<Option<MessageRow>> {
        let sql = format!("{COLUMNS} {FROM_MESSAGES} WHERE m.user_id = $1 AND m.idempotency_key = $2");
        Ok(reader!(self, |p| sqlx::query_as(&sql).bind(tenant).bind(key).fetch_optional(p).await)?)
    }

    pub async fn message(&self, tenant: i64, id: i64) -> DbResult<Option<MessageRow>> {
        let sql = format!("{COLUMNS} {FROM_MESSAGES} WHERE m.user_id = $1 AND m.id = $2");
        Ok(reader!(self, |p| sqlx::query_as(&sql).bind(tenant).bind(id).fetch_optional(p).await)?)
    }

    /// The message's status changes, oldest first.
    pub async fn message_status_history(&self, tenant: i64, id: i64) -> DbResult<Vec<StatusEventRow>> {
        Ok(reader!(self, |p| sqlx::query_as(
            "SELECT h.status, h.detail, h.created_at FROM message_status_history h \
             JOIN messages m ON m.id = h.message_id WHERE m.user_id = $1 AND h.message_id = $2 ORDER BY h.id"
        )
        .bind(tenant)
        .bind(id)
        .fetch_all(p)
        .await)?)
    }

    /// A page of the tenant's history, newest first, with the number of matching rows.
    ///
    /// Counting every match of a broad filter costs time in proportion to the matches (tens of
    /// milliseconds per million), so the count stops after `max(TOTAL_COUNT_CAP, offset +
    /// limit)` rows: past that, `total` is that bound and `exact` is false ("1,000+").
    pub async fn list_messages(
        &self,
        tenant: i64,
        filter: &MessageFilter,
        limit: i64,
        offset: i64,
    ) -> DbResult<MessagePage> {
        let (limit, offset) = super::clamp_page(limit, offset);
        let dialect = self.dialect();
        let plan = self.plan(filter).await?;
        let rows = match (plan.page, &self.pools) {
            (Source::Recent, super::Pools::Sqlite { read, .. }) => {
                recent_matches(read, tenant, filter, limit, offset).await?
            }
            (source, _) => {
                let (sql, args) = filter.page_sql(dialect, source);
                let n = args.len();
                let sql = format!("{sql} LIMIT ${} OFFSET ${}", n + 2, n + 3);
                reader!(self, |p| {
                    let q = bind_args!(sqlx::query_as(&sql).bind(tenant), &args);
                    q.bind(limit).bind(offset).fetch_all(p).await
                })?
            }
        };
        let bound = TOTAL_COUNT_CAP.max(offset.saturating_add(limit));
        let (cond, args) = filter.render(dialect, plan.count);
        // Any `bound + 1` matches answer the count. The order makes SQLite walk an index that
        // ends in it (one per filter); a text search drops it, so the trigram index (SQLite's
        // walk over its matches, PostgreSQL's choice of pg_trgm) can stop early too.
        let (from, order) = match (plan.count, dialect, filter.q.as_deref()) {
            (Source::Search, _, _) => ("messages_search s CROSS JOIN messages m ON m.id = s.rowid", ""),
            (_, Dialect::Postgres, Some(q)) if indexable(q) => ("messages m", ""),
            _ => ("messages m", ORDER),
        };
        let count_sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM {from}{cond} {order} LIMIT ${}) AS matching",
            args.len() + 2
        );
        let counted: i64 = reader!(self, |p| {
            let q = bind_args!(sqlx::query_scalar(&count_sql).bind(tenant), &args);
            q.bind(bound.saturating_add(1)).fetch_one(p).await
        })?;
        Ok(MessagePage { rows, total: counted.min(bound), exact: counted <= bound })
    }

    /// Up to `limit` matching rows, newest first, without counting (exports page by `before`).
    pub async fn list_messages_batch(
        &self,
        tenant: i64,
        filter: &MessageFilter,
        limit: i64,
    ) -> DbResult<Vec<MessageRow>> {
        let source = match (self.plan(filter).await?.page, &self.pools) {
            (Source::Recent, super::Pools::Sqlite { read, .. }) if filter.before.is_none() => {
                return recent_matches(read, tenant, filter, limit, 0).await;
            }
            // Past the first batch, walking the matches from the newest id back would pass every
            // batch already exported again; the history's indexes start at `before`.
            (Source::Recent, _) => Source::Scan,
            (source, _) => source,
        };
        let (sql, args) = filter.page_sql(self.dialect(), source);
        let sql = format!("{sql} LIMIT ${}", args.len() + 2);
        Ok(reader!(self, |p| {
            let q = bind_args!(sqlx::query_as(&sql).bind(tenant), &args);
            q.bind(limit).fetch_all(p).await
        })?)
    }

    /// Where a history query with this filter finds its rows.
    ///
    /// PostgreSQL's planner weighs the pg_trgm index against the others from its statistics,
    /// so there the SQL stays one `ILIKE`. SQLite cannot weigh an FTS5 index, so a text search
    /// first counts the trigram index's matches, up to `SEARCH_INDEX_MATCHES` (a read of the
    /// index alone, under a millisecond). Few: the page and the count read them all. Many: the
    /// page reads them from the newest id back and the count until it has enough, unless a
    /// chat or a time range (for the page also a status) narrows the history more than the
    /// text does; then the history's index for that filter is walked, as without the index.
    async fn plan(&self, filter: &MessageFilter) -> DbResult<Plan> {
        let scan = Plan { page: Source::Scan, count: Source::Scan };
        let (super::Pools::Sqlite { read, .. }, Some(q)) = (&self.pools, filter.q.as_deref()) else {
            return Ok(scan);
        };
        if !indexable(q) {
            return Ok(scan);
        }
        let matches: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM messages_search WHERE messages_search MATCH $1 LIMIT $2)",
        )
        .bind(fts5_phrase(q))
        .bind(SEARCH_INDEX_MATCHES)
        .fetch_one(read)
        .await?;
        if matches < SEARCH_INDEX_MATCHES {
            return Ok(Plan { page: Source::Search, count: Source::Search });
        }
        // A status narrows a page (a rare one a lot) more than a count, which stops at 1,001.
        let narrowed = filter.chat.is_some() || filter.since.is_some() || filter.until.is_some();
        Ok(Plan {
            page: if narrowed || filter.status.is_some() { Source::Scan } else { Source::Recent },
            count: if narrowed { Source::Scan } else { Source::Search },
        })
    }
}

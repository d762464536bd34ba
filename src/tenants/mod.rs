//! Tenants, API keys, passwords, the admin token and the activity log.

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::db::activity::NewActivity;
use crate::db::tenants::{NewApiKey, NewTenant};
use crate::db::{ActivityRow, ApiKeyRow, AuthRow, Db, DbError, TenantRow};
use crate::error::{ApiError, ApiResult};
use crate::limits::{LimitsService, Resource};

mod admin;
pub mod scopes;

pub use scopes::{Devices, Scope, Scopes};

pub use admin::TenantChange;

/// Visible start of every API key, so leaked keys are easy to recognise.
pub const KEY_PREFIX: &str = "wag_";

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("a tenant with this email exists")]
    EmailTaken,
    #[error("tenant not found")]
    NotFound,
    #[error("the api_keys limit is reached")]
    OverLimit,
    #[error(transparent)]
    Db(DbError),
}

impl From<DbError> for TenantError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::NotFound => TenantError::NotFound,
            other => TenantError::Db(other),
        }
    }
}

impl From<TenantError> for ApiError {
    fn from(e: TenantError) -> Self {
        match e {
            TenantError::Invalid { field, message } => ApiError::validation(field, message),
            TenantError::EmailTaken => ApiError::Conflict(e.to_string()),
            TenantError::NotFound => ApiError::not_found("tenant"),
            TenantError::OverLimit => crate::limits::LimitError::Exceeded { limit: Resource::ApiKeys }.into(),
            TenantError::Db(db) => db.into(),
        }
    }
}

/// Who is acting for a tenant: an API request authenticated by one of its keys, or a
/// dashboard page of its logged-in user. Services take it to scope storage by `id`, to apply
/// the package's limits and to record what was done in the activity log.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: i64,
    pub key_id: i64,
    pub package: String,
    pub ip: Option<String>,
    /// What the acting key may do (every scope on the dashboard).
    pub scopes: Scopes,
    /// The devices the acting key may see and act through (all on the dashboard).
    pub devices: Devices,
}

impl Tenant {
    /// Whether the acting key may see device `id`.
    pub fn sees(&self, device: i64) -> bool {
        self.devices.allows(device)
    }

    /// Whether the acting key may see an object bound to `device`, or to every device (`None`,
    /// e.g. a tenant-wide rule).
    pub fn sees_bound(&self, device: Option<i64>) -> bool {
        device.is_none_or(|d| self.sees(d))
    }

    /// Refuses a change to an object bound to `device`, or to every device (`None`), that
    /// reaches beyond the acting key's devices; `what` names the object.
    pub fn may_change(&self, device: Option<i64>, what: &str) -> ApiResult<()> {
        match device {
            Some(d) if self.sees(d) => Ok(()),
            Some(_) => Err(ApiError::Forbidden(format!(
                "this API key is limited to some devices; {what} is bound to another device"
            ))),
            None => self.needs_every_device(&format!("{what} for every device")),
        }
    }

    /// Refuses an act on the whole account (one that reaches beyond any device) to a key
    /// limited to some devices; `what` names the act.
    pub fn needs_every_device(&self, what: &str) -> ApiResult<()> {
        if self.devices.is_all() {
            return Ok(());
        }
        Err(ApiError::Forbidden(format!(
            "this API key is limited to some devices; {what} needs a key for every device"
        )))
    }

    /// An activity-log entry by this tenant.
    pub fn activity(&self, action: &str, target: impl Into<Option<String>>) -> NewActivity {
        NewActivity {
            user_id: Some(self.id),
            actor: "tenant".into(),
            action: action.into(),
            target: target.into(),
            detail: None,
            ip: self.ip.clone(),
        }
    }
}

/// The operator acting (an admin API request with the admin token, or the operator's
/// dashboard), from `ip`.
#[derive(Debug, Clone)]
pub struct Admin {
    pub ip: Option<String>,
}

impl Admin {
    pub fn activity(
        &self,
        user_id: Option<i64>,
        action: &str,
        target: impl Into<Option<String>>,
    ) -> NewActivity {
        NewActivity {
            user_id,
            actor: "admin".into(),
            action: action.into(),
            target: target.into(),
            detail: None,
            ip: self.ip.clone(),
        }
    }
}

/// A freshly generated API key: the secret is shown once, only the hash is stored.
pub struct NewKey {
    pub secret: String,
    pub prefix: String,
    pub hash: String,
}

/// Generates a key with 192 random bits: `wag_` + 48 hex characters.
pub fn generate_key() -> NewKey {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    let secret = format!("{KEY_PREFIX}{}", hex::encode(bytes));
    let prefix = secret[..KEY_PREFIX.len() + 8].to_string();
    let hash = hash_key(&secret);
    NewKey { secret, prefix, hash }
}

/// Keys carry enough entropy that a fast hash is safe; it keeps authentication cheap.
pub fn hash_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Hashes a dashboard password with argon2id.
pub fn hash_password(password: &str) -> Result<String, TenantError> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    if password.chars().count() < 8 {
        return Err(TenantError::Invalid {
            field: "password",
            message: "must be at least 8 characters".into(),
        });
    }
    if password.len() > 1024 {
        return Err(TenantError::Invalid { field: "password", message: "is too long".into() });
    }
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| TenantError::Invalid { field: "password", message: e.to_string() })
}

/// Checks a password against its stored argon2 hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash)
        .map(|parsed| argon2::Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        .unwrap_or(false)
}

/// The input of tenant creation, from the CLI, the admin API or the dashboard.
pub struct CreateTenant {
    pub name: String,
    pub email: String,
    pub package: Option<String>,
    pub password: Option<String>,
}

/// Validates an email address enough to catch typos: one `@`, a dot in the domain, no spaces.
fn parse_email(raw: &str) -> Result<String, TenantError> {
    let email = raw.trim().to_ascii_lowercase();
    let ok = email.len() <= 254
        && !email.contains(char::is_whitespace)
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.') && !domain.contains('@'));
    if ok {
        Ok(email)
    } else {
        Err(TenantError::Invalid { field: "email", message: "is not a valid email address".into() })
    }
}

/// Tenant operations shared by the CLI, the admin API and the dashboard.
#[derive(Clone)]
pub struct TenantService {
    db: Db,
    limits: LimitsService,
    default_package: String,
}

impl TenantService {
    pub fn new(db: Db, limits: LimitsService, default_package: String) -> Self {
        TenantService { db, limits, default_package }
    }

    /// Creates a tenant and its first API key; returns the tenant and the key's secret.
    pub async fn create(&self, input: CreateTenant) -> Result<(TenantRow, String), TenantError> {
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(TenantError::Invalid {
                field: "name",
                message: "must be 1 to 200 characters".into(),
            });
        }
        let email = parse_email(&input.email)?;
        let package = input.package.unwrap_or_else(|| self.default_package.clone());
        if !self.limits.has_package(&package) {
            return Err(TenantError::Invalid {
                field: "package",
                message: format!("unknown package; configured: {}", self.limits.package_names().join(", ")),
            });
        }
        let password_hash = input.password.as_deref().map(hash_password).transpose()?;
        let key = generate_key();
        let new =
            NewTenant { name, email: &email, package: &package, password_hash: password_hash.as_deref() };
        match self.db.create_tenant(&new, &key.prefix, &key.hash).await {
            Ok(row) => Ok((row, key.secret)),
            Err(DbError::Conflict(_)) => Err(TenantError::EmailTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// Issues another API key for a tenant that holds fewer than `limit` (`None`: no limit).
    pub async fn issue_key(
        &self,
        tenant: i64,
        name: &str,
        scopes: Scopes,
        devices: &Devices,
        limit: Option<i64>,
    ) -> Result<(ApiKeyRow, String), TenantError> {
        let name = name.trim();
        if name.chars().count() > 100 {
            return Err(TenantError::Invalid {
                field: "name",
                message: "must be at most 100 characters".into(),
            });
        }
        let key = generate_key();
        let name = if name.is_empty() { "api key" } else { name };
        if scopes.is_empty() {
            return Err(TenantError::Invalid {
                field: "scopes",
                message: "must name at least one scope".into(),
            });
        }
        if devices.ids().is_some_and(<[i64]>::is_empty) {
            return Err(TenantError::Invalid {
                field: "devices",
                message: "must name at least one device, or be left out for every device".into(),
            });
        }
        let (scopes, devices) = (scopes.to_stored(), devices.to_stored());
        let new = NewApiKey {
            name,
            prefix: &key.prefix,
            hash: &key.hash,
            scopes: &scopes,
            devices: devices.as_deref(),
        };
        let row = self.db.create_api_key(tenant, &new, limit).await?;
        Ok((row.ok_or(TenantError::OverLimit)?, key.secret))
    }

    /// The tenant's live API keys the acting key may see (those limited to some of its own
    /// devices, when it is limited), newest first, and their number.
    pub async fn list_keys(
        &self,
        tenant: &Tenant,
        limit: i64,
        offset: i64,
    ) -> ApiResult<(Vec<ApiKeyRow>, i64)> {
        if tenant.devices.is_all() {
            return Ok(self.db.list_api_keys(tenant.id, limit, offset).await?);
        }
        // Keys are few (a package limits them): the visible ones are picked here.
        let (all, _) = self.db.list_api_keys(tenant.id, i64::MAX, 0).await?;
        let visible: Vec<ApiKeyRow> = all.into_iter().filter(|k| self.visible_key(tenant, k)).collect();
        let total = visible.len() as i64;
        let page = visible.into_iter().skip(offset.max(0) as usize).take(limit.max(0) as usize).collect();
        Ok((page, total))
    }

    /// Whether the acting key may see key `row`: one limited to devices it sees too.
    fn visible_key(&self, tenant: &Tenant, row: &ApiKeyRow) -> bool {
        tenant.devices.covers(&Devices::from_stored(row.devices.as_deref()))
    }

    /// Creates a key of the tenant with `scopes` and `devices` (`None`: the acting key's own).
    /// A key never makes a key that may do more, or see more devices, than itself. The
    /// package's `api_keys` limit holds; the secret is in the answer only.
    pub async fn create_key(
        &self,
        tenant: &Tenant,
        name: &str,
        scopes: Option<Scopes>,
        devices: Option<Devices>,
    ) -> ApiResult<(ApiKeyRow, String)> {
        let scopes = scopes.unwrap_or(tenant.scopes);
        if !tenant.scopes.covers(scopes) {
            return Err(ApiError::Forbidden(format!(
                "this API key may only make keys with its own scopes ({})",
                tenant.scopes.names().join(", ")
            )));
        }
        let devices = devices.unwrap_or_else(|| tenant.devices.clone());
        if !tenant.devices.covers(&devices) {
            return Err(ApiError::Forbidden(
                "this API key may only make keys limited to its own devices".into(),
            ));
        }
        let limit = self.limits.limits(tenant.id, &tenant.package).await?.get(Resource::ApiKeys);
        let (row, secret) = self.issue_key(tenant.id, name, scopes, &devices, limit).await?;
        self.record(tenant.activity("api_key.create", format!("api_key:{}", row.id))).await;
        Ok((row, secret))
    }

    /// Revokes one of the tenant's keys at once.
    pub async fn revoke_key(&self, tenant: &Tenant, id: i64) -> ApiResult<()> {
        if !tenant.devices.is_all() {
            let row = self.db.api_key(tenant.id, id).await?;
            if !row.is_some_and(|k| self.visible_key(tenant, &k)) {
                return Err(ApiError::not_found("api key"));
            }
        }
        if !self.db.revoke_api_key(tenant.id, id).await? {
            return Err(ApiError::not_found("api key"));
        }
        self.record(tenant.activity("api_key.revoke", format!("api_key:{id}"))).await;
        Ok(())
    }

    /// What was done on the tenant's account, newest first, optionally one action only.
    pub async fn activity(
        &self,
        tenant: &Tenant,
        action: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> ApiResult<(Vec<ActivityRow>, i64)> {
        tenant.needs_every_device("the account's activity log")?;
        Ok(self.db.list_activity(tenant.id, action, limit, offset).await?)
    }

    /// Resolves a presented key. `None` for unknown or revoked keys.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<AuthRow>, TenantError> {
        if !secret.starts_with(KEY_PREFIX) || secret.len() > 200 {
            return Ok(None);
        }
        let auth = self.db.auth_by_key_hash(&hash_key(secret)).await?;
        if let Some(a) = &auth {
            // Record use at most once a minute per key.
            if a.last_used_at.is_none_or(|t| crate::db::now_ms() - t > 60_000) {
                let _ = self.db.touch_api_key(a.key_id).await;
            }
        }
        Ok(auth)
    }

    pub async fn record(&self, entry: NewActivity) {
        if let Err(e) = self.db.record_activity(&entry).await {
            tracing::warn!(error = %e, action = %entry.action, "could not record activity");
        }
    }
}

/// The admin token: configured, or generated on first start and stored as a hash.
pub enum AdminToken {
    /// Hash of the configured or stored token.
    Hash(String),
}

impl AdminToken {
    /// Resolves the token at start-up. Returns the token and, when one was just generated,
    /// its secret (to print once).
    pub async fn bootstrap(db: &Db, configured: &str) -> Result<(AdminToken, Option<String>), DbError> {
        if !configured.is_empty() {
            return Ok((AdminToken::Hash(hash_key(configured)), None));
        }
        if let Some(hash) = db.setting("admin_token_hash").await? {
            return Ok((AdminToken::Hash(hash), None));
        }
        let mut bytes = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut bytes);
        let secret = format!("wagadm_{}", hex::encode(bytes));
        let stored = db.setting_insert_once("admin_token_hash", &hash_key(&secret)).await?;
        // Another process may have won the race; then its token stands and ours is not shown.
        let shown = (stored == hash_key(&secret)).then_some(secret);
        Ok((AdminToken::Hash(stored), shown))
    }

    /// Constant-time comparison of a presented token with the stored hash.
    pub fn verify(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        let AdminToken::Hash(hash) = self;
        hash_key(presented).as_bytes().ct_eq(hash.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_prefixed_and_hash_stably() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with("wag_") && a.secret.len() == 52);
        assert!(a.secret.starts_with(&a.prefix));
        assert_eq!(hash_key(&a.secret), a.hash);
        assert!(!a.hash.contains(&a.secret[4..]));
    }

    #[test]
    fn passwords_verify_only_with_the_right_password() {
        let hash = hash_password("rahasia123").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("rahasia123", &hash));
        assert!(!verify_password("rahasia124", &hash));
        assert!(hash_password("short").is_err());
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(parse_email(" Budi@Toko.CO.id ").unwrap(), "budi@toko.co.id");
        for bad in ["", "budi", "budi@", "@toko.id", "budi@toko", "bu di@toko.id", "a@b@c.id"] {
            assert!(parse_email(bad).is_err(), "{bad}");
        }
    }
}

//! The hosts a tenant allows one plugin to reach over HTTP (`allowed_hosts`): exact names or
//! IP addresses (`api.toko.id`, `203.0.113.7`), or `*.example.com` for every name under
//! `example.com` (not `example.com` itself). Matching ignores case and a trailing dot; ports
//! are not part of a pattern (any port of an allowed host is allowed).

use serde::{Deserialize, Serialize};

/// Patterns one plugin may hold.
pub const MAX_HOSTS: usize = 50;
/// Longest pattern, in bytes (a DNS name is at most 253).
const MAX_PATTERN: usize = 255;

/// A plugin's allowed hosts, validated. Empty: the plugin may reach no host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AllowedHosts(Vec<String>);

impl AllowedHosts {
    /// Validates and normalises the patterns a tenant gave (lower case, no trailing dot,
    /// duplicates dropped), or says what is wrong with the first bad one.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<AllowedHosts, String> {
        if patterns.len() > MAX_HOSTS {
            return Err(format!("at most {MAX_HOSTS} allowed hosts"));
        }
        let mut hosts: Vec<String> = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            let pattern = normalise(pattern.as_ref());
            check(&pattern)?;
            if !hosts.contains(&pattern) {
                hosts.push(pattern);
            }
        }
        Ok(AllowedHosts(hosts))
    }

    /// The stored form, read back: patterns that no longer pass are dropped rather than
    /// widening anything.
    pub fn from_stored(json: Option<&str>) -> AllowedHosts {
        let stored: Vec<String> = json.and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default();
        AllowedHosts(stored.into_iter().map(|p| normalise(&p)).filter(|p| check(p).is_ok()).collect())
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `host` (a URL's host, IPv6 literals in brackets or not) is allowed.
    pub fn allows(&self, host: &str) -> bool {
        let host = normalise(host.trim_start_matches('[').trim_end_matches(']'));
        self.0.iter().any(|pattern| match pattern.strip_prefix("*.") {
            Some(domain) => {
                host.len() > domain.len() + 1 && host.ends_with(domain) && {
                    let dot = host.len() - domain.len() - 1;
                    host.as_bytes()[dot] == b'.'
                }
            }
            None => *pattern == host,
        })
    }
}

fn normalise(pattern: &str) -> String {
    let pattern = pattern.trim();
    let pattern = pattern.strip_prefix('[').and_then(|p| p.strip_suffix(']')).unwrap_or(pattern);
    pattern.trim_end_matches('.').to_ascii_lowercase()
}

/// A pattern is an IP address, a DNS name, or `*.` and a DNS name of at least two labels.
fn check(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("an allowed host is empty".into());
    }
    if pattern.len() > MAX_PATTERN {
        return Err(format!("an allowed host is longer than {MAX_PATTERN} bytes"));
    }
    if pattern.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let (wildcard, name) = match pattern.strip_prefix("*.") {
        Some(name) => (true, name),
        None => (false, pattern),
    };
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !labels.iter().all(label_ok) {
        return Err(format!(
            "`{pattern}` is not a host name, an IP address or `*.` followed by a domain (no scheme, \
             port or path)"
        ));
    }
    if wildcard && labels.len() < 2 {
        return Err(format!("`{pattern}` would allow a whole top-level domain"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_and_addresses_match_themselves_only() {
        let hosts = AllowedHosts::parse(&["API.Toko.id.", "127.0.0.1", "[::1]"]).unwrap();
        assert_eq!(hosts.as_slice(), ["api.toko.id", "127.0.0.1", "::1"]);
        assert!(hosts.allows("api.toko.id"));
        assert!(hosts.allows("API.TOKO.ID."));
        assert!(hosts.allows("127.0.0.1"));
        assert!(hosts.allows("[::1]"));
        assert!(!hosts.allows("x.api.toko.id"));
        assert!(!hosts.allows("toko.id"));
        assert!(!hosts.allows("api.toko.id.evil.com"));
        assert!(!hosts.allows("127.0.0.2"));
    }

    #[test]
    fn a_wildcard_matches_names_under_its_domain_not_the_domain() {
        let hosts = AllowedHosts::parse(&["*.example.com"]).unwrap();
        assert!(hosts.allows("a.example.com"));
        assert!(hosts.allows("a.b.example.com"));
        assert!(!hosts.allows("example.com"));
        assert!(!hosts.allows("badexample.com"));
        assert!(!hosts.allows("example.com.evil.net"));
        assert!(!AllowedHosts::default().allows("example.com"));
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        for bad in
            ["", "https://api.toko.id", "api.toko.id:8080", "api.toko.id/x", "*", "*.com", "a..b", "-a.b"]
        {
            assert!(AllowedHosts::parse(&[bad]).is_err(), "{bad:?} was accepted");
        }
        let many: Vec<String> = (0..=MAX_HOSTS).map(|i| format!("h{i}.example.com")).collect();
        assert!(AllowedHosts::parse(&many).is_err());
        assert_eq!(AllowedHosts::parse(&["a.b", "A.B"]).unwrap().as_slice(), ["a.b"]);
    }

    #[test]
    fn stored_patterns_that_no_longer_pass_are_dropped() {
        let hosts = AllowedHosts::from_stored(Some(r#"["api.toko.id", "*", "not a host"]"#));
        assert_eq!(hosts.as_slice(), ["api.toko.id"]);
        assert!(AllowedHosts::from_stored(Some("junk")).is_empty());
        assert!(AllowedHosts::from_stored(None).is_empty());
    }
}

//! The gateway's one outbound HTTP client, hardened for URLs that tenants choose.
//!
//! Tenants make the gateway fetch media by URL and (later) deliver webhooks to URLs they
//! register, so every outbound request is a possible server-side request forgery. The client
//! built here refuses to reach private, loopback, link-local, unique-local, shared (CGNAT),
//! multicast, reserved, documentation and cloud-metadata addresses unless the operator allows
//! private targets. The check happens twice: on the URL itself ([`check_url`], because reqwest
//! connects to IP literals without asking the resolver) and in the DNS resolver, on the addresses
//! a name resolves to at connect time, so a name cannot be re-pointed between check and use.
//! Redirects are never followed (each hop would need the same checks, and a redirect to an
//! internal address is the classic way around them), system proxies are ignored (a proxy would
//! resolve the name itself, past our resolver), and every request has a connect timeout, a total
//! timeout and a cap on the body it reads.

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{header, redirect, Method, RequestBuilder, Response, Url};

/// Longest URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 4096;

/// Why an outbound request was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The target is (or resolves only to) an address the gateway must not reach.
    #[error("refused to connect to {0}: private and internal addresses are not allowed")]
    Blocked(String),
    #[error("the request timed out")]
    Timeout,
    #[error("the response is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error("the server answered with a redirect (HTTP {status}); redirects are not followed")]
    Redirect { status: u16 },
    #[error("the server answered HTTP {status}")]
    Status { status: u16 },
    #[error("the request failed: {0}")]
    Request(String),
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// How to build an [`HttpClient`].
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Time allowed to open the TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Time allowed for the whole exchange, body included.
    pub timeout: Duration,
    /// Allow private and other internal targets (tests, intranet deployments).
    pub allow_private: bool,
}

impl HttpOptions {
    /// A total `timeout`, a connect timeout of at most 10 s within it.
    pub fn new(timeout: Duration, allow_private: bool) -> Self {
        HttpOptions { connect_timeout: timeout.min(Duration::from_secs(10)), timeout, allow_private }
    }
}

/// The hardened outbound client. Cheap to clone; build one and share it.
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    options: HttpOptions,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("options", &self.options).finish()
    }
}

impl HttpClient {
    pub fn new(options: HttpOptions) -> Result<HttpClient, NetError> {
        let client = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .no_proxy()
            .connect_timeout(options.connect_timeout)
            .timeout(options.timeout)
            .dns_resolver(Arc::new(GuardedResolver { allow_private: options.allow_private }))
            .user_agent(concat!("wa-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NetError::Build(error_chain(&e)))?;
        Ok(HttpClient { client, options })
    }

    pub fn options(&self) -> &HttpOptions {
        &self.options
    }

    /// [`check_url`] with this client's private-address switch.
    pub fn check_url(&self, url: &str) -> Result<Url, NetError> {
        check_url(url, self.options.allow_private)
    }

    /// A request to a checked URL; send it with [`HttpClient::send`].
    pub fn request(&self, method: Method, url: &str) -> Result<RequestBuilder, NetError> {
        Ok(self.client.request(method, self.check_url(url)?))
    }

    /// Sends a request made by [`HttpClient::request`], mapping failures to [`NetError`].
    /// Any status is returned, redirects included: the caller decides what they mean.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, NetError> {
        request.send().await.map_err(map_reqwest)
    }

    /// GETs `url` and returns its body (at most `max_bytes`) and its content type. Redirects
    /// and other non-2xx answers are errors.
    pub async fn get_capped(&self, url: &str, max_bytes: usize) -> Result<(Bytes, Option<String>), NetError> {
        let request = self.request(Method::GET, url)?;
        let exchange = async {
            let response = self.send(request).await?;
            let status = response.status();
            if status.is_redirection() {
                return Err(NetError::Redirect { status: status.as_u16() });
            }
            if !status.is_success() {
                return Err(NetError::Status { status: status.as_u16() });
            }
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = read_capped(response, max_bytes).await?;
            Ok((body, content_type))
        };
        // reqwest's own total timeout covers the body too; this guard is belt and braces.
        tokio::time::timeout(self.options.timeout + Duration::from_secs(1), exchange)
            .await
            .map_err(|_| NetError::Timeout)?
    }
}

/// Reads a response body, refusing more than `max_bytes` (early when `Content-Length` says so).
pub async fn read_capped(response: Response, max_bytes: usize) -> Result<Bytes, NetError> {
    if response.content_length().is_some_and(|len| len > max_bytes as u64) {
        return Err(NetError::TooLarge { max: max_bytes });
    }
    let mut body = BytesMut::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(map_reqwest)?;
        if body.len() + chunk.len() > max_bytes {
            return Err(NetError::TooLarge { max: max_bytes });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Parses and checks a URL a tenant gave: http or https, a host, no user name or password, and,
/// unless `allow_private`, no IP literal or `localhost` name of a forbidden address. Names are
/// checked again by the resolver when the client connects.
pub fn check_url(url: &str, allow_private: bool) -> Result<Url, NetError> {
    let url = url.trim();
    if url.len() > MAX_URL_LEN {
        return Err(NetError::InvalidUrl(format!("longer than {MAX_URL_LEN} bytes")));
    }
    let parsed = Url::parse(url).map_err(|e| NetError::InvalidUrl(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(NetError::InvalidUrl(format!(
            "scheme `{}` is not allowed; use http or https",
            parsed.scheme()
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(NetError::InvalidUrl("a user name or password in the URL is not allowed".into()));
    }
    let host =
        parsed.host_str().filter(|h| !h.is_empty()).ok_or_else(|| NetError::InvalidUrl("no host".into()))?;
    // A name (the parser has already turned international names into ASCII) is letters,
    // digits, hyphens and dots; the parser lets through characters no DNS name has (`*`, `!`).
    if parsed
        .domain()
        .is_some_and(|name| !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
    {
        return Err(NetError::InvalidUrl(format!("`{host}` is not a valid host name")));
    }
    if allow_private {
        return Ok(parsed);
    }
    // The URL parser normalises IPv4 literals (`0x7f.1` is `127.0.0.1`) and brackets IPv6 ones.
    let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        if is_forbidden_ip(ip) {
            return Err(NetError::Blocked(ip.to_string()));
        }
    } else {
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if name == "localhost" || name.ends_with(".localhost") {
            return Err(NetError::Blocked(format!("{host} (a loopback name)")));
        }
    }
    Ok(parsed)
}

/// Whether the gateway must refuse to connect to `ip` (when private targets are not allowed):
/// anything that is not a globally routable unicast address, and cloud metadata services.
/// IPv4 addresses embedded in IPv6 (mapped, translated, NAT64, 6to4) are judged as IPv4.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

/// IPv4 blocks that are not globally reachable unicast, or that host metadata services.
const BLOCKED_V4: &[(Ipv4Addr, u32)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network", unspecified
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared (CGNAT); Alibaba metadata 100.100.100.200
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local; cloud metadata 169.254.169.254
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments; Oracle metadata 192.0.0.192
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // 6to4 relay anycast (deprecated)
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, broadcast 255.255.255.255
];

/// Blocks inside global unicast 2000::/3 that are not reachable or tunnel elsewhere.
const BLOCKED_V6: &[(Ipv6Addr, u32)] = &[
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32), // Teredo (tunnels to any IPv4 address)
    (Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0), 48), // benchmarking
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation
];

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let ip = u32::from(ip);
    BLOCKED_V4.iter().any(|&(net, prefix)| {
        let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
        ip & mask == u32::from(net) & mask
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    let v4_at = |shift: u32| Ipv4Addr::from((bits >> shift) as u32);
    let s = ip.segments();
    // ::ffff:a.b.c.d (mapped), ::ffff:0:a.b.c.d (translated) and 64:ff9b::a.b.c.d (NAT64).
    if bits >> 32 == 0xffff || bits >> 32 == 0xffff_0000 || bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        return forbidden_v4(v4_at(0));
    }
    // 2002:a.b.c.d::/48, 6to4.
    if s[0] == 0x2002 {
        return forbidden_v4(v4_at(80));
    }
    // Only global unicast 2000::/3 is reachable; that rules out ::, ::1, IPv4-compatible ::/96,
    // 64:ff9b:1::/48, 100::/64, unique-local fc00::/7 (metadata fd00:ec2::254), link-local
    // fe80::/10, site-local fec0::/10 and multicast ff00::/8.
    if s[0] & 0xe000 != 0x2000 {
        return true;
    }
    BLOCKED_V6.iter().any(|&(net, prefix)| {
        let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
        bits & mask == u128::from(net) & mask
    })
}

/// Resolves names with the system resolver and drops forbidden addresses, so a name that points
/// (or is re-pointed) at an internal address cannot be reached.
struct GuardedResolver {
    allow_private: bool,
}

/// The resolver's refusal, found again in reqwest's error chain by [`map_reqwest`].
#[derive(Debug, thiserror::Error)]
#[error("{0} (it resolves only to internal addresses)")]
struct BlockedName(String);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                found.iter().copied().filter(|a| allow_private || !is_forbidden_ip(a.ip())).collect();
            if allowed.is_empty() && !found.is_empty() {
                return Err(Box::new(BlockedName(host)) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Maps a reqwest failure: a resolver refusal is `Blocked`, a timeout `Timeout`.
fn map_reqwest(err: reqwest::Error) -> NetError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(blocked) = e.downcast_ref::<BlockedName>() {
            return NetError::Blocked(blocked.to_string());
        }
        source = e.source();
    }
    if err.is_timeout() {
        return NetError::Timeout;
    }
    NetError::Request(error_chain(&err))
}

/// An error and its causes on one line, without the URL reqwest repeats.
fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![];
    let mut source = err.source();
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    if parts.is_empty() {
        err.to_string()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn host_names_with_characters_no_dns_name_has_are_refused() {
        for url in ["http://1*/", "https://a!b.example/", "http://exa_mple.com/"] {
            assert!(matches!(check_url(url, true), Err(NetError::InvalidUrl(_))), "{url}");
        }
        for url in [
            "http://example.com/",
            "https://xn--bcher-kva.example/",
            "http://b\u{fc}cher.example/",
            "http://10.0.0.1/",
        ] {
            assert!(check_url(url, true).is_ok(), "{url}");
        }
    }

    use std::str::FromStr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const FORBIDDEN: &[&str] = &[
        "0.0.0.0",
        "0.1.2.3",
        "10.0.0.1",
        "10.255.255.255",
        "100.64.0.1",
        "100.100.100.200",
        "100.127.255.255",
        "127.0.0.1",
        "127.1.2.3",
        "169.254.0.1",
        "169.254.169.254",
        "172.16.0.1",
        "172.31.255.255",
        "192.0.0.192",
        "192.0.2.10",
        "192.168.1.1",
        "198.18.0.1",
        "198.19.255.255",
        "198.51.100.7",
        "203.0.113.9",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "::127.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:0:192.168.0.1",
        "64:ff9b::7f00:1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::1",
        "100::1",
        "2001::1",
        "2001:2::1",
        "2001:db8::1",
        "2002:7f00:1::1",
        "2002:a9fe:a9fe::1",
        "3fff::1",
        "fc00::1",
        "fd00:ec2::254",
        "fd12:3456::1",
        "fe80::1",
        "fec0::1",
        "ff02::1",
    ];

    const ALLOWED: &[&str] = &[
        "1.1.1.1",
        "8.8.8.8",
        "100.63.255.255",
        "100.128.0.1",
        "169.253.1.1",
        "172.15.255.255",
        "172.32.0.1",
        "192.0.1.1",
        "192.169.0.1",
        "198.20.0.1",
        "203.0.114.1",
        "223.255.255.255",
        "2001:4860:4860::8888",
        "2606:4700:4700::1111",
        "2a00:1450:4001::1",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
        "3fff:1000::1",
    ];

    #[test]
    fn internal_addresses_are_forbidden() {
        for ip in FORBIDDEN {
            assert!(is_forbidden_ip(ip.parse().unwrap()), "{ip} should be forbidden");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in ALLOWED {
            assert!(!is_forbidden_ip(ip.parse().unwrap()), "{ip} should be allowed");
        }
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("https://example.com/a.png", false).is_ok());
        assert!(check_url(" http://8.8.8.8:8080/x ", false).is_ok());
        for bad in [
            "ftp://example.com/a",
            "file:///etc/passwd",
            "not a url",
            "https://user:pw@example.com/",
            "http://",
        ] {
            assert!(matches!(check_url(bad, false), Err(NetError::InvalidUrl(_))), "{bad}");
        }
        for blocked in [
            "http://127.0.0.1/",
            "http://0x7f.1/",
            "http://2130706433/",
            "http://[::1]:8080/",
            "http://[::ffff:169.254.169.254]/latest/meta-data",
            "http://169.254.169.254/latest/meta-data",
            "http://[fd00:ec2::254]/",
            "http://localhost:3000/",
            "http://LOCALHOST./",
            "http://api.localhost/",
        ] {
            assert!(matches!(check_url(blocked, false), Err(NetError::Blocked(_))), "{blocked}");
            assert!(check_url(blocked, true).is_ok(), "{blocked} with private targets allowed");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(matches!(check_url(&long, false), Err(NetError::InvalidUrl(_))));
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_internal_addresses() {
        let strict = GuardedResolver { allow_private: false };
        let err = match strict.resolve(Name::from_str("localhost").unwrap()).await {
            Err(e) => e,
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
        };
        assert!(err.downcast_ref::<BlockedName>().is_some(), "{err}");
        let lax = GuardedResolver { allow_private: true };
        let addrs: Vec<_> = lax.resolve(Name::from_str("localhost").unwrap()).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty(), "{addrs:?}");
    }

    /// Answers one connection with `response` and returns the port.
    async fn serve_once(response: Vec<u8>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            if let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(&response).await;
                let _ = socket.shutdown().await;
            }
        });
        port
    }

    fn client(allow_private: bool) -> HttpClient {
        HttpClient::new(HttpOptions::new(Duration::from_secs(5), allow_private)).unwrap()
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_blocked_at_connect_time() {
        let port = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()).await;
        // Bypasses check_url's `localhost` rule to exercise the resolver inside reqwest.
        let err = client(false).client.get(format!("http://localhost:{port}/")).send().await.unwrap_err();
        assert!(matches!(map_reqwest(err), NetError::Blocked(_)));
        assert!(matches!(
            client(false).get_capped(&format!("http://127.0.0.1:{port}/"), 10).await,
            Err(NetError::Blocked(_))
        ));
    }

    #[tokio::test]
    async fn bodies_are_capped_and_redirects_refused() {
        let ok = serve_once(
            b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: 4\r\n\r\nabcd".to_vec(),
        )
        .await;
        let (body, ct) = client(true).get_capped(&format!("http://localhost:{ok}/"), 4).await.unwrap();
        assert_eq!((&body[..], ct.as_deref()), (&b"abcd"[..], Some("image/png")));

        let declared = serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec()).await;
        let got = client(true).get_capped(&format!("http://127.0.0.1:{declared}/"), 10).await;
        assert!(matches!(got, Err(NetError::TooLarge { max: 10 })), "{got:?}");

        // No length given: the stream is cut once it passes the cap.
        let mut unsized_body = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
        unsized_body.extend(std::iter::repeat_n(b'x', 64 * 1024));
        let streamed = serve_once(unsized_body).await;
        let got = client(true).get_capped(&format!("http://127.0.0.1:{streamed}/"), 1000).await;
        assert!(matches!(got, Err(NetError::TooLarge { max: 1000 })), "{got:?}");

        let moved = serve_once(
            b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\n\r\n".to_vec(),
        )
        .await;
        let got = client(true).get_capped(&format!("http://127.0.0.1:{moved}/"), 1000).await;
        assert!(matches!(got, Err(NetError::Redirect { status: 302 })), "{got:?}");

        let missing = serve_once(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()).await;
        let got = client(true).get_capped(&format!("http://127.0.0.1:{missing}/"), 1000).await;
        assert!(matches!(got, Err(NetError::Status { status: 404 })), "{got:?}");
    }

    #[tokio::test]
    async fn a_slow_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (_socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let slow = HttpClient::new(HttpOptions::new(Duration::from_millis(300), true)).unwrap();
        let got = slow.get_capped(&format!("http://127.0.0.1:{port}/"), 10).await;
        assert!(matches!(got, Err(NetError::Timeout)), "{got:?}");
    }
}

//! The scope each API request needs, decided by its method and route alone, so every endpoint
//! is covered without a handler saying anything: a GET reads, except listing keys and showing a
//! pairing QR code; the sends and the actions on messages and chats send; everything else
//! manages.

use axum::http::Method;

use crate::tenants::scopes::Scope;

/// The sends and the actions on messages and chats.
const SEND_ROUTES: &[&str] = &[
    "/api/send-message",
    "/api/send-media",
    "/api/send-location",
    "/api/send-contact",
    "/api/send-poll",
    "/api/user/messages/{id}",
    "/api/user/messages/{id}/forward",
    "/api/user/messages/{id}/reaction",
    "/api/user/messages/{id}/read",
    "/api/user/chats/{chat}/read",
    "/api/user/devices/{id}/presence",
];

/// Reads that are not GETs (a question put to WhatsApp), and GETs that are not reads.
const READ_POSTS: &[&str] = &["/api/user/devices/{id}/check-numbers"];
const MANAGE_GETS: &[&str] = &["/api/user/api-keys", "/api/user/devices/{id}/qr"];

/// The scope a request needs, by its method and its route's template (`None` when no route
/// matched: the strictest).
pub fn required(method: &Method, route: Option<&str>) -> Scope {
    let Some(route) = route else { return Scope::Manage };
    let reading = matches!(*method, Method::GET | Method::HEAD);
    if MANAGE_GETS.contains(&route) {
        Scope::Manage
    } else if reading || READ_POSTS.contains(&route) {
        Scope::Read
    } else if SEND_ROUTES.contains(&route) {
        Scope::Send
    } else {
        Scope::Manage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_needs_one_scope() {
        let r = |m: Method, p: &str| required(&m, Some(p));
        assert_eq!(r(Method::GET, "/api/user/chat-history"), Scope::Read);
        assert_eq!(r(Method::GET, "/api/user/api-keys"), Scope::Manage);
        assert_eq!(r(Method::POST, "/api/send-message"), Scope::Send);
        assert_eq!(r(Method::DELETE, "/api/user/messages/{id}"), Scope::Send);
        assert_eq!(r(Method::POST, "/api/user/devices/{id}/check-numbers"), Scope::Read);
        assert_eq!(r(Method::POST, "/api/user/auto-reply"), Scope::Manage);
        assert_eq!(required(&Method::GET, None), Scope::Manage);
    }
}

//! The WebSocket handshake (RFC 6455, section 4.2): checking a request
//! asks for one, and the `101 Switching Protocols` answer. The key's
//! digest is tungstenite's; the connection is then hyper's upgrade.

use axum::body::Body;
use axum::http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The `Sec-WebSocket-Accept` value for a request that asks for a
/// WebSocket, or what is wrong with it.
pub fn accept_key(headers: &HeaderMap) -> Result<String, &'static str> {
    let has = |name, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|value| value.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
    };
    if !has(UPGRADE, "websocket") || !has(CONNECTION, "upgrade") {
        return Err("this address speaks WebSocket only (Upgrade: websocket)");
    }
    if headers.get("sec-websocket-version").and_then(|v| v.to_str().ok()) != Some("13") {
        return Err("WebSocket version 13 is the one spoken here");
    }
    let key = headers.get(SEC_WEBSOCKET_KEY).ok_or("a WebSocket request needs its key")?;
    Ok(derive_accept_key(key.as_bytes()))
}

/// The answer that hands the connection over to the WebSocket.
pub fn switching_protocols(accept: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(accept) = HeaderValue::from_str(accept) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_example_key_is_answered_and_a_plain_request_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
        headers.insert("sec-websocket-version", HeaderValue::from_static("13"));
        headers.insert(SEC_WEBSOCKET_KEY, HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(accept_key(&headers), Ok("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".to_owned()));
        headers.remove(UPGRADE);
        assert!(accept_key(&headers).is_err());
    }
}

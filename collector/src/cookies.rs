//! First-party cookies: reading the ones a beacon carries and writing `Set-Cookie` headers.
//!
//! Safari (ITP) caps cookies written by script (`document.cookie`) at 7 days; cookies set by the
//! site's own server in an HTTP response are not capped that way. So the collect response
//! re-sets the identifiers the tag uses: `_tandem_cid` (400 days, the longest browsers allow),
//! `_fbp` and `_fbc` (90 days, Meta's sliding expiry). `Path=/`, `SameSite=Lax`, no `Domain`
//! (host-only, the collector is served same-site), not `HttpOnly` because the tag reads them,
//! `Secure` when the request came over https. Values that are not valid cookie octets are
//! skipped rather than escaped, so the browser reads back exactly what the tag wrote. Which ids
//! are set, and which cookies read are kept, follow the event's consent (see `server.rs` and
//! `RequestContext::consented`).

use crate::event::RequestContext;
use crate::forward::ga4::client_id_from_ga_cookie;

pub const CLIENT_ID_COOKIE: &str = "_tandem_cid";
pub const CLIENT_ID_MAX_AGE_SECONDS: u64 = 400 * 24 * 60 * 60;
pub const META_COOKIE_MAX_AGE_SECONDS: u64 = 90 * 24 * 60 * 60;

/// The identifiers to (re)set on a collect response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirstPartyIds {
    pub client_id: Option<String>,
    pub fbp: Option<String>,
    pub fbc: Option<String>,
}

/// `Set-Cookie` header values for the ids that are present and cookie-safe.
pub fn set_cookie_headers(ids: &FirstPartyIds, secure: bool) -> Vec<String> {
    let mut headers = Vec::new();
    let mut add = |name: &str, value: &Option<String>, max_age: u64| {
        if let Some(value) = value.as_deref().filter(|value| is_cookie_value(value)) {
            let secure = if secure { "; Secure" } else { "" };
            headers.push(format!("{name}={value}; Max-Age={max_age}; Path=/; SameSite=Lax{secure}"));
        }
    };
    add(CLIENT_ID_COOKIE, &ids.client_id, CLIENT_ID_MAX_AGE_SECONDS);
    add("_fbp", &ids.fbp, META_COOKIE_MAX_AGE_SECONDS);
    add("_fbc", &ids.fbc, META_COOKIE_MAX_AGE_SECONDS);
    headers
}

/// RFC 6265 cookie-octet: printable ASCII except space, `"`, `,`, `;` and `\`; at most 1 KB.
pub fn is_cookie_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 1024
        && value.bytes().all(|byte| (0x21..=0x7e).contains(&byte) && !matches!(byte, b'"' | b',' | b';' | b'\\'))
}

/// Fills the cookie fields of a request context from `Cookie` header values.
pub fn read_request_cookies<'a>(headers: impl Iterator<Item = &'a str>, context: &mut RequestContext) {
    for header in headers {
        for pair in header.split(';') {
            let Some((name, value)) = pair.trim().split_once('=') else { continue };
            let value = value.trim().trim_matches('"');
            if !is_cookie_value(value) {
                continue;
            }
            match name.trim() {
                "_fbp" => context.cookie_fbp = Some(value.to_owned()),
                "_fbc" => context.cookie_fbc = Some(value.to_owned()),
                "_ttp" => context.cookie_ttp = Some(value.to_owned()),
                "_ga" => context.ga_client_id = client_id_from_ga_cookie(value),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_safe_values_only() {
        let ids = FirstPartyIds { client_id: Some("c-1".to_owned()), fbp: Some("fb.1.2.3".to_owned()), fbc: Some("bad;value".to_owned()) };
        assert_eq!(
            set_cookie_headers(&ids, true),
            vec![
                "_tandem_cid=c-1; Max-Age=34560000; Path=/; SameSite=Lax; Secure".to_owned(),
                "_fbp=fb.1.2.3; Max-Age=7776000; Path=/; SameSite=Lax; Secure".to_owned(),
            ]
        );
    }

    #[test]
    fn reads_cookies() {
        let mut context = RequestContext::default();
        read_request_cookies(["a=1; _fbp=fb.1.2.3", "_ga=GA1.1.99.1700000000; _ttp=x y"].into_iter(), &mut context);
        assert_eq!(context.cookie_fbp.as_deref(), Some("fb.1.2.3"));
        assert_eq!(context.ga_client_id.as_deref(), Some("99.1700000000"));
        assert_eq!(context.cookie_ttp, None);
    }
}

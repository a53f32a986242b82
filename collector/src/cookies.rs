//! First-party cookies: reading the ones a beacon carries and writing `Set-Cookie` headers.
//!
//! Safari (ITP) caps cookies written by script (`document.cookie`) at 7 days; cookies set by the
//! site's own server in an HTTP response are not capped that way. So the collect response
//! re-sets the identifiers the tag uses: `_tandem_cid` (400 days, the longest browsers allow),
//! `_fbp` and `_fbc` (90 days, Meta's sliding expiry). `Path=/`, `SameSite=Lax`, not `HttpOnly`
//! because the tag reads them, `Secure` when the request came over https. Values that are not
//! valid cookie octets are skipped rather than escaped, so the browser reads back exactly what the
//! tag wrote. Which ids are set, and which cookies read are kept, follow the event's consent (see
//! `server.rs` and `RequestContext::consented`).
//!
//! `Domain`: the tag writes these cookies on the registrable domain (`Domain=shop.example`). A
//! host-only cookie of the same name would be a second cookie beside the tag's, and one set by a
//! collector on `t.shop.example` is never seen by `www.shop.example`. So with `cookie_domain`
//! configured (the domain the tag writes on) the cookies carry `Domain=<it>`, but only when the
//! host the browser addressed (`Host`, or `X-Forwarded-Host` from a trusted proxy) is that domain
//! or a subdomain of it. For any other host they stay host-only, as without the key: the browser
//! would drop a cookie whose Domain does not cover the host (RFC 6265 §5.3 step 6), losing the
//! refresh, whereas host-only still refreshes what that host (a dev or demo host, typically) sees.
//! Without `cookie_domain` they are host-only, which matches the tag's own cookies only where the
//! tag writes host-only ones too (an IP address or a single-label host such as `localhost`).

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

/// `Set-Cookie` header values for the ids that are present and cookie-safe; `domain` from
/// [`cookie_domain_for`] (`None`: host-only).
pub fn set_cookie_headers(ids: &FirstPartyIds, secure: bool, domain: Option<&str>) -> Vec<String> {
    let mut headers = Vec::new();
    let secure = if secure { "; Secure" } else { "" };
    let domain = domain.map(|domain| format!("; Domain={domain}")).unwrap_or_default();
    let mut add = |name: &str, value: &Option<String>, max_age: u64| {
        if let Some(value) = value.as_deref().filter(|value| is_cookie_value(value)) {
            headers.push(format!("{name}={value}; Max-Age={max_age}{domain}; Path=/; SameSite=Lax{secure}"));
        }
    };
    add(CLIENT_ID_COOKIE, &ids.client_id, CLIENT_ID_MAX_AGE_SECONDS);
    add("_fbp", &ids.fbp, META_COOKIE_MAX_AGE_SECONDS);
    add("_fbc", &ids.fbc, META_COOKIE_MAX_AGE_SECONDS);
    headers
}

/// The `Domain` to give the cookies of a response to `request_host` (a `Host` header value, port
/// allowed): the configured domain (already lowercase, no leading dot) when the host is that
/// domain or a subdomain of it, else `None` (host-only; see the module docs for why).
pub fn cookie_domain_for<'a>(configured: Option<&'a str>, request_host: Option<&str>) -> Option<&'a str> {
    let domain = configured?;
    let host = request_host?.trim();
    // An IPv6 literal (`[::1]:8080`) never takes a Domain cookie.
    if host.starts_with('[') {
        return None;
    }
    let host = host.rsplit_once(':').map_or(host, |(name, _port)| name);
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let under_domain = host == domain || host.strip_suffix(domain).is_some_and(|subdomain| subdomain.ends_with('.'));
    under_domain.then_some(domain)
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
            set_cookie_headers(&ids, true, None),
            vec![
                "_tandem_cid=c-1; Max-Age=34560000; Path=/; SameSite=Lax; Secure".to_owned(),
                "_fbp=fb.1.2.3; Max-Age=7776000; Path=/; SameSite=Lax; Secure".to_owned(),
            ]
        );
    }

    #[test]
    fn the_domain_goes_on_every_cookie_when_given() {
        let ids = FirstPartyIds { client_id: Some("c-1".to_owned()), fbp: Some("fb.1.2.3".to_owned()), fbc: Some("fb.1.2.F".to_owned()) };
        assert_eq!(
            set_cookie_headers(&ids, false, Some("shop.example")),
            vec![
                "_tandem_cid=c-1; Max-Age=34560000; Domain=shop.example; Path=/; SameSite=Lax".to_owned(),
                "_fbp=fb.1.2.3; Max-Age=7776000; Domain=shop.example; Path=/; SameSite=Lax".to_owned(),
                "_fbc=fb.1.2.F; Max-Age=7776000; Domain=shop.example; Path=/; SameSite=Lax".to_owned(),
            ]
        );
        assert!(set_cookie_headers(&ids, false, None).iter().all(|cookie| !cookie.contains("Domain")), "host-only without one");
    }

    #[test]
    fn the_domain_applies_to_its_own_hosts_only() {
        let domain = Some("shop.example");
        for host in ["shop.example", "www.shop.example", "t.shop.example:8443", "WWW.Shop.Example", "www.shop.example.", " a.b.shop.example "] {
            assert_eq!(cookie_domain_for(domain, Some(host)), domain, "{host:?}");
        }
        for host in ["evilshop.example", "shop.example.evil", "example", "other.example", "127.0.0.1:8081", "[::1]:8080", "", "shop.example@x"] {
            assert_eq!(cookie_domain_for(domain, Some(host)), None, "{host:?}");
        }
        assert_eq!(cookie_domain_for(domain, None), None, "no Host header");
        assert_eq!(cookie_domain_for(None, Some("www.shop.example")), None, "not configured: host-only");
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

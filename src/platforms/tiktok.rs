//! TikTok Pixel: `ttq.track(Name, props, {event_id})`, and `ttq.page()` for PageView.
//!
//! Canonical names are TikTok's own where TikTok has that standard event (its list since May 2025,
//! which uses Meta's names: Purchase, Lead, …). Donate has no TikTok standard event and goes as a
//! custom event of the same name; custom names pass through. `ttq.page()` takes no event_id, so
//! TikTok cannot dedup PageViews with the endpoint. Tandem owns PageView: a site moving to Tandem
//! removes `ttq.page()` from its own snippet, or sets `sendPageView: false` to keep it.

use super::{push_call, config_error, load_options, members, push_custom, Destination, SetupCtx};
use crate::core::consent::State;
use crate::core::error::TagError;
use crate::core::event::{write_items, EventName, Item, Standard, Status, ValidEvent};
use crate::core::identity::{write_hashes, Identity};
use crate::core::json::{str_array, Value, W};
use crate::core::tag::Effect;
use crate::core::text;

crate::messages! {
    PIXEL_CODE_REQUIRED = "x0" "is required: the pixel code, letters and digits (about 20 characters)";
}

/// TikTok `contents[]` keys.
const ITEM_FIELDS: &[(Item, &str)] = &[(Item::Id, "content_id"), (Item::Quantity, "quantity"), (Item::Price, "price"), (Item::Name, "content_name"), (Item::Category, "content_category")];

pub const KEY: &str = "tiktok";
const KNOWN: &str = "pixelId, load, sendPageView";

/// Canonical events that are TikTok standard events under the same name.
pub const TIKTOK_STANDARD: &[Standard] = &[
    Standard::AddPaymentInfo,
    Standard::AddToCart,
    Standard::AddToWishlist,
    Standard::CompleteRegistration,
    Standard::Contact,
    Standard::CustomizeProduct,
    Standard::FindLocation,
    Standard::InitiateCheckout,
    Standard::Lead,
    Standard::Purchase,
    Standard::Schedule,
    Standard::Search,
    Standard::StartTrial,
    Standard::SubmitApplication,
    Standard::Subscribe,
    Standard::ViewContent,
];

pub struct TikTok {
    pixel_id: String,
    load: bool,
    send_page_view: bool,
}

pub fn configure(v: &Value, warnings: &mut Vec<String>) -> Result<Box<dyn Destination>, TagError> {
    members(KEY, v, KNOWN, warnings)?;
    // Filled in place, as google::configure does: no value moved into the struct at the end.
    let mut tiktok = Box::new(TikTok { pixel_id: String::new(), load: false, send_page_view: false });
    tiktok.pixel_id = match v.get("pixelId") {
        Some(Value::String(id)) if matches!(id.len(), 8..=40) && text::all(id, |b| b.is_ascii_alphanumeric()) => id.clone(),
        other => {
            return Err(config_error(KEY, "pixelId", PIXEL_CODE_REQUIRED, other.unwrap_or(&Value::Null)))
        }
    };
    load_options(KEY, v, false, &mut tiktok.load, &mut tiktok.send_page_view)?;
    Ok(tiktok)
}

/// TikTok's properties, as the next value of `w`.
fn props(w: &mut W, ev: &ValidEvent) {
    let p = &ev.params;
    w.open('{').opt_number("value", &p.value).opt_string("currency", &p.currency);
    write_items(w, "contents", p, ITEM_FIELDS, true);
    w.opt_s("content_type", p.content_type)
        .opt_string("content_name", &p.content_name)
        .opt_string("content_category", &p.content_category)
        // TikTok's parameter page names search_string; its standard-event table names query.
        .opt_string("search_string", &p.search_string)
        .opt_string("query", &p.search_string)
        .opt_string("order_id", &p.order_id);
    // TikTok documents status as a string.
    match &p.status {
        Some(Status::Flag(done)) => {
            w.s("status", if *done { "true" } else { "false" });
        }
        Some(Status::Text(text)) => {
            w.s("status", text);
        }
        None => {}
    }
    // `query` is the one key written above that a custom param may also have.
    push_custom(w, ev, if p.search_string.is_some() { "query" } else { "" });
    w.close('}');
}

impl Destination for TikTok {
    fn key(&self) -> &'static str {
        KEY
    }

    fn setup(&self, ctx: &SetupCtx, out: &mut Vec<Effect>) {
        if self.load {
            // The base code runs ttq.load(pixelId) (not ttq.page(): PageView is Tandem's).
            out.push(Effect::LoadBaseCode { platform: KEY, args_json: str_array(&[&self.pixel_id, ctx.nonce]) });
        }
        self.consent(ctx.consent, true, out);
        if let Some(identity) = ctx.identity {
            self.identify(identity, out);
        }
    }

    /// TikTok's cookie consent calls: `ttq.holdConsent()` while pending, then `grantConsent()` or
    /// `revokeConsent()`; granted only with ad_storage and ad_user_data (the pixel sets `_ttp` and
    /// sends it).
    fn consent(&self, state: &State, _initial: bool, out: &mut Vec<Effect>) {
        if !state.mirrored() {
            return;
        }
        let method = if state.pending() {
            "ttq.holdConsent"
        } else if state.ad_pixels() {
            "ttq.grantConsent"
        } else {
            "ttq.revokeConsent"
        };
        push_call(out, KEY, method, String::from("[]"));
    }

    /// `ttq.identify({email, phone_number, external_id})` with SHA-256 hashes.
    fn identify(&self, identity: &Identity, out: &mut Vec<Effect>) {
        // Written in place, not made into a String of their own (tiktok_json) and copied in.
        if identity.tiktok.is_empty() {
            return;
        }
        let mut w = W::new('[');
        write_hashes(&mut w, &identity.tiktok);
        push_call(out, KEY, "ttq.identify", w.end(']'));
    }

    fn event(&self, ev: &ValidEvent, out: &mut Vec<Effect>) {
        if matches!(ev.name, EventName::Standard(Standard::PageView)) {
            if self.send_page_view {
                push_call(out, KEY, "ttq.page", String::from("[]"));
            }
            return;
        }
        let mut w = W::new('[');
        w.str(ev.name.as_str());
        props(&mut w, ev);
        w.open('{').s("event_id", &ev.event_id).close('}');
        push_call(out, KEY, "ttq.track", w.end(']'));
    }
}

/// TikTok's base code, as its snippet does it (the `ttq` method queue, then events.js via
/// `ttq.load`), without the snippet's `ttq.page()`: PageView is Tandem's. Args: `[pixel id, nonce]`.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(inline_js = r#"
export function load_tiktok(argsJson) {
  var args = JSON.parse(argsJson), w = window, d = document, name = 'ttq';
  w.TiktokAnalyticsObject = name;
  var ttq = w[name] = w[name] || [];
  if (ttq._i && ttq._i[args[0]]) return;
  ttq.methods = ['page', 'track', 'identify', 'instances', 'debug', 'on', 'off', 'once', 'ready', 'alias', 'group', 'enableCookie', 'disableCookie', 'holdConsent', 'revokeConsent', 'grantConsent'];
  ttq.setAndDefer = function (target, method) {
    target[method] = function () { target.push([method].concat(Array.prototype.slice.call(arguments, 0))); };
  };
  for (var i = 0; i < ttq.methods.length; i++) ttq.setAndDefer(ttq, ttq.methods[i]);
  ttq.instance = function (id) {
    for (var e = ttq._i[id] || [], n = 0; n < ttq.methods.length; n++) ttq.setAndDefer(e, ttq.methods[n]);
    return e;
  };
  ttq.load = function (id, options) {
    var url = 'https://analytics.tiktok.com/i18n/pixel/events.js';
    ttq._i = ttq._i || {}; ttq._i[id] = []; ttq._i[id]._u = url;
    ttq._t = ttq._t || {}; ttq._t[id] = +new Date();
    ttq._o = ttq._o || {}; ttq._o[id] = options || {};
    try {
      var s = d.createElement('script');
      s.async = true;
      s.src = url + '?sdkid=' + encodeURIComponent(id) + '&lib=' + name;
      if (args[1]) s.nonce = args[1];
      (d.head || d.documentElement).appendChild(s);
    } catch (e) { /* a page that refuses the script (Trusted Types): ttq queues, the endpoint still gets every event */ }
  };
  ttq.load(args[0]);
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = load_tiktok)]
    pub fn load_base_code(args_json: &str);
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{configure, event, lines, Effects};
    use super::*;

    const TT: &str = r#"{"pixelId":"CABCDEFGHIJ1234567890","load":true}"#;

    fn check(config: &str, name: &str, params: &str, expected: &[&str]) {
        let d = configure("tiktok", config).unwrap();
        assert_eq!(lines(&d.event_effects(&event(name, params))), expected, "{name} {params}");
    }

    #[test]
    fn every_canonical_event() {
        for st in Standard::ALL {
            if *st == Standard::PageView {
                check(TT, "PageView", "{}", &["ttq.page[]"]);
                continue;
            }
            let params = if *st == Standard::Purchase { r#"{"value":1,"currency":"EUR"}"# } else { "{}" };
            let want = String::from(r#"ttq.track[""#) + st.name() + "\"," + params + r#",{"event_id":"ev-1"}]"#;
            check(TT, st.name(), params, &[&want]);
        }
        // Donate is sent under its own name but is not a TikTok standard event.
        assert!(!TIKTOK_STANDARD.contains(&Standard::Donate));
        assert_eq!(TIKTOK_STANDARD.len(), Standard::ALL.len() - 2);
    }

    #[test]
    fn props_in_tiktok_shape() {
        check(
            TT,
            "Purchase",
            r#"{"value":20,"currency":"GBP","order_id":"o1","content_type":"product","contents":[{"id":"s1","quantity":1,"price":"20.00","name":"Hat","category":"Hats"}],"coupon":"X"}"#,
            &[r#"ttq.track["Purchase",{"value":20,"currency":"GBP","contents":[{"content_id":"s1","quantity":1,"price":20.00,"content_name":"Hat","content_category":"Hats"}],"content_type":"product","order_id":"o1","coupon":"X"},{"event_id":"ev-1"}]"#],
        );
        check(TT, "Search", r#"{"search_string":"hats","content_ids":[1,2]}"#, &[
            r#"ttq.track["Search",{"contents":[{"content_id":"1"},{"content_id":"2"}],"search_string":"hats","query":"hats"},{"event_id":"ev-1"}]"#,
        ]);
        check(TT, "BookDemo", r#"{"plan":"pro"}"#, &[r#"ttq.track["BookDemo",{"plan":"pro"},{"event_id":"ev-1"}]"#]);
        check(TT, "CompleteRegistration", r#"{"content_name":"Newsletter","content_category":"Mail","status":true}"#, &[
            r#"ttq.track["CompleteRegistration",{"content_name":"Newsletter","content_category":"Mail","status":"true"},{"event_id":"ev-1"}]"#,
        ]);
        check(TT, "CompleteRegistration", r#"{"status":"confirmed","tier":{"name":"gold","level":2}}"#, &[
            r#"ttq.track["CompleteRegistration",{"status":"confirmed","tier":{"name":"gold","level":2}},{"event_id":"ev-1"}]"#,
        ]);
    }

    #[test]
    fn page_view_rules_and_setup() {
        check(r#"{"pixelId":"CABCDEFGHIJ1234567890"}"#, "PageView", "{}", &["ttq.page[]"]);
        check(r#"{"pixelId":"CABCDEFGHIJ1234567890","sendPageView":false}"#, "PageView", "{}", &[]);
        let unmanaged = State::unmanaged();
        let ctx = SetupCtx { nonce: "n", consent: &unmanaged, identity: None };
        assert_eq!(lines(&configure("tiktok", TT).unwrap().setup_effects(&ctx)), [r#"load:tiktok["CABCDEFGHIJ1234567890","n"]"#]);
        assert!(configure("tiktok", r#"{"pixelId":"CABCDEFGHIJ1234567890"}"#).unwrap().setup_effects(&ctx).is_empty());
    }

    #[test]
    fn config_errors() {
        for cfg in ["{}", r#"{"pixelId":"short"}"#, r#"{"pixelId":"has space 123456"}"#, r#"{"pixelId":12345678901}"#, "null"] {
            assert!(configure("tiktok", cfg).is_err(), "{cfg}");
        }
    }
}

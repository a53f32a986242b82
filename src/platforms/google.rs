//! Google tag (gtag.js): GA4 events and Google Ads conversions.
//!
//! Canonical names map to GA4 recommended events where one exists (Purchase → purchase, …);
//! the rest go as snake_case custom events, and custom names pass through (they already obey
//! GA4's naming rules). Every GA4 event carries `event_id` and `send_to` the configured tag, so
//! Tandem's calls do not fan out to other Google tags the site runs.
//!
//! PageView → page_view only when Tandem loads gtag (`load: true`, where it configures the tag
//! with `send_page_view: false`) or `sendPageView: true`: a site's own `gtag('config')` already
//! sends page_view, and a second one would double every page view.

use super::{push_call, config_error, load_options, members, push_custom, Destination, SetupCtx};
use crate::core::consent::State;
use crate::core::error::TagError;
use crate::core::event::{write_items, EventName, Item, Standard, ValidEvent};
use crate::core::identity::{write_hashes, Identity};
use crate::core::json::{str_array, Value, W};
use crate::core::tag::Effect;
use crate::core::text;

crate::messages! {
    ADS_OBJECT = "g0" "must be an object {id, labels}";
    GOOGLE_ADS = "g1" "google.ads";
    ADS_ID_FORMAT = "g2" "must be a Google Ads id like \"AW-123456789\"";
    ADS_LABELS = "g3" "ads.labels";
    LABEL_FORMAT = "g4" "values must be conversion labels (letters, digits, _ and -)";
    GOOGLE_ADS_LABELS = "g5" "google.ads.labels.";
    NOT_STANDARD_NAME = "g6" " is not a standard event name; it applies to the custom event of that exact name";
    LABELS_OBJECT = "g7" "must be an object {EventName: \"label\"}";
    TAG_ID_FORMAT = "g8" "must be a Google tag id like \"G-ABC123XYZ\"";
    NEEDS_AN_ID = "g9" "needs tagId (GA4) or ads.id (Google Ads)";
}

/// GA4 item keys (`items[]`), in the order gtag documents them.
const ITEM_FIELDS: &[(Item, &str)] = &[(Item::Id, "item_id"), (Item::Name, "item_name"), (Item::Price, "price"), (Item::Quantity, "quantity"), (Item::Category, "item_category")];

pub const KEY: &str = "google";
const KNOWN: &str = "tagId, ads, load, sendPageView";
/// Params Tandem sets itself; a custom param with these names is not passed to gtag.
const RESERVED: &str = "send_to event_id value currency transaction_id items search_term";

struct Ads {
    id: String,
    /// `(event name, conversion label)`.
    labels: Vec<(String, String)>,
}

pub struct Google {
    tag_id: Option<String>,
    ads: Option<Ads>,
    load: bool,
    send_page_view: bool,
}

/// GA4's name for a canonical event.
pub fn ga4_name(st: Standard) -> &'static str {
    // In Standard's order. From Contact on, no GA4 recommended event: snake_case custom events.
    const NAMES: crate::core::text::Names<18> = crate::core::text::Names::new(concat!(
        "page_view view_item search add_to_cart add_to_wishlist begin_checkout add_payment_info purchase ",
        "generate_lead sign_up contact customize_product donate find_location schedule start_trial ",
        "submit_application subscribe",
    ));
    NAMES.get(st as usize)
}

fn id_with_prefix(v: &Value, prefixes: &[&str], digits_only: bool) -> Option<String> {
    let id = text::trim(v.as_str()?);
    // A loop, not find_map(..), whose adapter was linked for this line.
    let mut rest = None;
    for p in prefixes {
        if let Some(r) = id.strip_prefix(p) {
            rest = Some(r);
            break;
        }
    }
    let rest = rest?;
    let ok = !rest.is_empty()
        && rest.len() <= 20
        && if digits_only { text::all(rest, |b| b.is_ascii_digit()) } else { text::all(rest, |b| b.is_ascii_uppercase() || b.is_ascii_digit()) };
    ok.then(|| id.to_string())
}

fn is_label(l: &str) -> bool {
    !l.is_empty() && l.len() <= 64 && text::all(l, |b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A config error's field, rule and value, for `configure` to build the one `config_error` from.
type Bad<'a> = (&'static str, &'static str, &'a Value);

/// Reads the `ads` config into `into`, in place as `configure` fills its fields (on an error the
/// caller drops what was filled).
fn ads<'a>(v: &'a Value, warnings: &mut Vec<String>, into: &mut Option<Ads>) -> Result<(), Bad<'a>> {
    if !matches!(v, Value::Object(_)) {
        return Err(("ads", ADS_OBJECT, v));
    }
    // An object: only the unknown-key warnings can come of it.
    let _ = members(GOOGLE_ADS, v, "id, labels", warnings);
    let id = v.get("id").and_then(|id| id_with_prefix(id, &["AW-"], true));
    let Some(id) = id else {
        return Err(("ads.id", ADS_ID_FORMAT, v.get("id").unwrap_or(&Value::Null)));
    };
    let labels = &mut into.insert(Ads { id, labels: Vec::new() }).labels;
    match v.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (name, label) in m {
                match label.as_str() {
                    Some(l) if is_label(l) => labels.push((name.clone(), l.to_string())),
                    _ => return Err((ADS_LABELS, LABEL_FORMAT, label)),
                }
                if Standard::from_name(name).is_none() {
                    let mut w = String::from(GOOGLE_ADS_LABELS);
                    w.push_str(name);
                    w.push_str(NOT_STANDARD_NAME);
                    warnings.push(w);
                }
            }
        }
        Some(other) => return Err((ADS_LABELS, LABELS_OBJECT, other)),
    }
    Ok(())
}

pub fn configure(v: &Value, warnings: &mut Vec<String>) -> Result<Box<dyn Destination>, TagError> {
    members(KEY, v, KNOWN, warnings)?;
    // Filled in place, field by field: each value built apart and then moved into the struct was
    // copied through memory, with a drop of its own on every error path after it.
    let mut google = Box::new(Google { tag_id: None, ads: None, load: false, send_page_view: false });
    // The errors share one config_error, built into the return value after the block, where
    // each one built apart (or returned by ads) was moved through memory.
    let (field, rule, bad) = 'bad: {
        match v.get("tagId") {
            None | Some(Value::Null) => {}
            Some(t) => {
                google.tag_id = id_with_prefix(t, &["G-", "GT-"], false);
                if google.tag_id.is_none() {
                    break 'bad ("tagId", TAG_ID_FORMAT, t);
                }
            }
        }
        match v.get("ads") {
            None | Some(Value::Null) => {}
            Some(a) => {
                if let Err(bad) = ads(a, warnings, &mut google.ads) {
                    break 'bad bad;
                }
            }
        }
        if google.tag_id.is_none() && google.ads.is_none() {
            break 'bad ("", NEEDS_AN_ID, v);
        }
        // sendPageView defaults to load.
        load_options(KEY, v, true, &mut google.load, &mut google.send_page_view)?;
        return Ok(google);
    };
    Err(config_error(KEY, field, rule, bad))
}

/// A transaction_id for deduplication: the order id, else the event id (never empty).
fn transaction_id(ev: &ValidEvent) -> &str {
    ev.params.order_id.as_deref().unwrap_or(&ev.event_id)
}

/// The args of a GA4 `gtag('event', name, {…})` call.
fn ga4_event(ev: &ValidEvent, name: &str, tag_id: &str) -> String {
    let p = &ev.params;
    let mut w = W::new('[');
    w.str("event").str(name).open('{').opt_number("value", &p.value).opt_string("currency", &p.currency);
    if matches!(ev.name, EventName::Standard(Standard::Purchase)) {
        w.s("transaction_id", transaction_id(ev));
    } else {
        w.opt_string("transaction_id", &p.order_id);
    }
    write_items(&mut w, "items", p, ITEM_FIELDS, true);
    w.opt_string("search_term", &p.search_string);
    push_custom(&mut w, ev, RESERVED);
    w.s("event_id", &ev.event_id).s("send_to", tag_id).close('}');
    w.end(']')
}

impl Destination for Google {
    fn key(&self) -> &'static str {
        KEY
    }

    fn setup(&self, ctx: &SetupCtx, out: &mut Vec<Effect>) {
        if self.load {
            // One match, where or, map and unwrap_or_default linked Option plumbing for this line.
            let primary = match (&self.tag_id, &self.ads) {
                (Some(id), _) => id.as_str(),
                (None, Some(ads)) => ads.id.as_str(),
                (None, None) => "",
            };
            out.push(Effect::LoadBaseCode { platform: KEY, args_json: str_array(&[primary, ctx.nonce]) });
        }
        // Consent default and user_data before any config or event (with the site's own gtag,
        // its config may have run already: set Consent Mode defaults there too).
        self.consent(ctx.consent, true, out);
        if let Some(identity) = ctx.identity {
            self.identify(identity, out);
        }
        if !self.load {
            return;
        }
        if let Some(t) = &self.tag_id {
            let mut w = W::new('[');
            w.str("config").str(t).raw(r#"{"send_page_view":false}"#);
            push_call(out, KEY, "gtag", w.end(']'));
        }
        if let Some(a) = &self.ads {
            push_call(out, KEY, "gtag", str_array(&["config", &a.id]));
        }
    }

    /// Consent Mode v2: `gtag('consent', 'default', {…})` at setup when the site manages consent
    /// through Tandem, `gtag('consent', 'update', {…})` for every change; when only GPC denied
    /// something, an update of ad_user_data and ad_personalization (the site may have its own
    /// default). A default while a wait runs carries the site's values and the time left as
    /// `wait_for_update` (`State::gtag_json`), so gtag holds its own tags as Tandem holds its events.
    fn consent(&self, state: &State, initial: bool, out: &mut Vec<Effect>) {
        if !state.mirrored() {
            return;
        }
        let kind = if initial && state.managed { "default" } else { "update" };
        let mut w = W::new('[');
        w.str("consent").str(kind).raw(&state.gtag_json(!state.managed));
        push_call(out, KEY, "gtag", w.end(']'));
    }

    /// Enhanced conversions: `gtag('set', 'user_data', {sha256_email_address, …})`.
    fn identify(&self, identity: &Identity, out: &mut Vec<Effect>) {
        // Written in place, not made into a String of their own (google_json) and copied in.
        if identity.google.is_empty() {
            return;
        }
        let mut w = W::new('[');
        write_hashes(w.str("set").str("user_data"), &identity.google);
        push_call(out, KEY, "gtag", w.end(']'));
    }

    fn event(&self, ev: &ValidEvent, out: &mut Vec<Effect>) {
        let name = match ev.name.standard() {
            Some(Standard::PageView) if !self.send_page_view => None,
            Some(st) => Some(ga4_name(st)),
            None => Some(ev.name.as_str()),
        };
        if let (Some(tag_id), Some(name)) = (&self.tag_id, name) {
            push_call(out, KEY, "gtag", ga4_event(ev, name, tag_id));
        }
        if let Some(ads) = &self.ads {
            if let Some((_, label)) = ads.labels.iter().find(|(n, _)| n == ev.name.as_str()) {
                let mut send_to = ads.id.clone();
                send_to.push('/');
                send_to.push_str(label);
                let mut w = W::new('[');
                w.str("event").str("conversion").open('{').s("send_to", &send_to);
                w.opt_number("value", &ev.params.value)
                    .opt_string("currency", &ev.params.currency)
                    .s("transaction_id", transaction_id(ev))
                    .close('}');
                push_call(out, KEY, "gtag", w.end(']'));
            }
        }
    }
}

/// Google's base code, as gtag's snippet does it (`dataLayer`, a `gtag` that pushes `arguments`,
/// `gtag('js', new Date())`, then gtag.js), skipped when the page already has a `gtag`.
/// Args: `[tag id, nonce]`; the `config` calls come from `setup`.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(inline_js = r#"
export function load_google(argsJson) {
  var args = JSON.parse(argsJson), w = window, d = document;
  if (typeof w.gtag === 'function') return;
  w.dataLayer = w.dataLayer || [];
  w.gtag = function () { w.dataLayer.push(arguments); };
  w.gtag('js', new Date());
  try {
    var s = d.createElement('script');
    s.async = true;
    s.src = 'https://www.googletagmanager.com/gtag/js?id=' + encodeURIComponent(args[0]);
    if (args[1]) s.nonce = args[1];
    (d.head || d.documentElement).appendChild(s);
  } catch (e) { /* a page that refuses the script (Trusted Types): gtag queues, the endpoint still gets every event */ }
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = load_google)]
    pub fn load_base_code(args_json: &str);
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{configure, event, lines, Effects};
    use super::*;

    const GA: &str = r#"{"tagId":"G-ABC123","load":true}"#;

    fn check(config: &str, name: &str, params: &str, expected: &[&str]) {
        let d = configure("google", config).unwrap();
        assert_eq!(lines(&d.event_effects(&event(name, params))), expected, "{name} {params}");
    }

    #[test]
    fn every_standard_event_maps_to_its_ga4_name() {
        let table: &[(&str, &str)] = &[
            ("PageView", "page_view"), ("ViewContent", "view_item"), ("Search", "search"), ("AddToCart", "add_to_cart"),
            ("AddToWishlist", "add_to_wishlist"), ("InitiateCheckout", "begin_checkout"), ("AddPaymentInfo", "add_payment_info"),
            ("Lead", "generate_lead"), ("CompleteRegistration", "sign_up"), ("Contact", "contact"),
            ("CustomizeProduct", "customize_product"), ("Donate", "donate"), ("FindLocation", "find_location"),
            ("Schedule", "schedule"), ("StartTrial", "start_trial"), ("SubmitApplication", "submit_application"),
            ("Subscribe", "subscribe"),
        ];
        assert_eq!(table.len() + 1, Standard::ALL.len(), "Purchase is checked separately");
        for (name, ga4) in table {
            let want = String::from(r#"gtag["event",""#) + ga4 + r#"",{"event_id":"ev-1","send_to":"G-ABC123"}]"#;
            check(GA, name, "{}", &[&want]);
        }
        check(GA, "Purchase", r#"{"value":1,"currency":"EUR"}"#, &[
            r#"gtag["event","purchase",{"value":1,"currency":"EUR","transaction_id":"ev-1","event_id":"ev-1","send_to":"G-ABC123"}]"#,
        ]);
    }

    #[test]
    fn custom_names_pass_through() {
        check(GA, "BookDemo", r#"{"plan":"pro","send_to":"G-EVIL"}"#, &[r#"gtag["event","BookDemo",{"plan":"pro","event_id":"ev-1","send_to":"G-ABC123"}]"#]);
    }

    #[test]
    fn params_in_ga4_shape() {
        check(
            GA,
            "Purchase",
            r#"{"value":"30.00","currency":"usd","order_id":"A-1","contents":[{"id":"s1","quantity":2,"price":"15.00","name":"Shoe","category":"Shoes"}],"coupon":"X"}"#,
            &[r#"gtag["event","purchase",{"value":30.00,"currency":"USD","transaction_id":"A-1","items":[{"item_id":"s1","item_name":"Shoe","price":15.00,"quantity":2,"item_category":"Shoes"}],"coupon":"X","event_id":"ev-1","send_to":"G-ABC123"}]"#],
        );
        check(GA, "Search", r#"{"search_string":"red shoes","content_ids":["a"]}"#, &[
            r#"gtag["event","search",{"items":[{"item_id":"a"}],"search_term":"red shoes","event_id":"ev-1","send_to":"G-ABC123"}]"#,
        ]);
    }

    #[test]
    fn page_view_rules() {
        check(r#"{"tagId":"G-ABC123"}"#, "PageView", "{}", &[]);
        check(r#"{"tagId":"G-ABC123","sendPageView":true}"#, "PageView", "{}", &[r#"gtag["event","page_view",{"event_id":"ev-1","send_to":"G-ABC123"}]"#]);
        check(r#"{"tagId":"G-ABC123","load":true,"sendPageView":false}"#, "PageView", "{}", &[]);
    }

    #[test]
    fn ads_conversions() {
        let cfg = r#"{"tagId":"G-ABC123","ads":{"id":"AW-123","labels":{"Purchase":"abC_1","Lead":"xyz","BookDemo":"bd"}}}"#;
        check(cfg, "Purchase", r#"{"value":5,"currency":"EUR","order_id":"o-9"}"#, &[
            r#"gtag["event","purchase",{"value":5,"currency":"EUR","transaction_id":"o-9","event_id":"ev-1","send_to":"G-ABC123"}]"#,
            r#"gtag["event","conversion",{"send_to":"AW-123/abC_1","value":5,"currency":"EUR","transaction_id":"o-9"}]"#,
        ]);
        check(cfg, "Lead", "{}", &[
            r#"gtag["event","generate_lead",{"event_id":"ev-1","send_to":"G-ABC123"}]"#,
            r#"gtag["event","conversion",{"send_to":"AW-123/xyz","transaction_id":"ev-1"}]"#,
        ]);
        check(cfg, "BookDemo", "{}", &[
            r#"gtag["event","BookDemo",{"event_id":"ev-1","send_to":"G-ABC123"}]"#,
            r#"gtag["event","conversion",{"send_to":"AW-123/bd","transaction_id":"ev-1"}]"#,
        ]);
        // Ads only: no GA4 event.
        check(r#"{"ads":{"id":"AW-123","labels":{"Lead":"xyz"}}}"#, "Lead", "{}", &[r#"gtag["event","conversion",{"send_to":"AW-123/xyz","transaction_id":"ev-1"}]"#]);
        check(r#"{"ads":{"id":"AW-123","labels":{"Lead":"xyz"}}}"#, "AddToCart", "{}", &[]);
    }

    #[test]
    fn setup_effects() {
        let unmanaged = State::unmanaged();
        let ctx = SetupCtx { nonce: "n", consent: &unmanaged, identity: None };
        let d = configure("google", r#"{"tagId":"G-ABC123","ads":{"id":"AW-1"},"load":true}"#).unwrap();
        assert_eq!(lines(&d.setup_effects(&ctx)), [
            r#"load:google["G-ABC123","n"]"#,
            r#"gtag["config","G-ABC123",{"send_page_view":false}]"#,
            r#"gtag["config","AW-1"]"#,
        ]);
        let d = configure("google", r#"{"ads":{"id":"AW-1"},"load":true}"#).unwrap();
        assert_eq!(lines(&d.setup_effects(&ctx)), [r#"load:google["AW-1","n"]"#, r#"gtag["config","AW-1"]"#]);
        let d = configure("google", r#"{"tagId":"G-ABC123"}"#).unwrap();
        assert!(d.setup_effects(&ctx).is_empty());
    }

    #[test]
    fn config_errors() {
        for (cfg, msg) in [
            ("{}", "needs tagId"),
            (r#"{"tagId":"UA-123-1"}"#, "google.tagId must be"),
            (r#"{"tagId":"G-abc"}"#, "google.tagId must be"),
            (r#"{"tagId":5}"#, "google.tagId must be"),
            (r#"{"ads":{"id":"123"}}"#, "google.ads.id must be"),
            (r#"{"ads":"AW-1"}"#, "google.ads must be an object"),
            (r#"{"ads":{"id":"AW-1","labels":{"Lead":"a b"}}}"#, "google.ads.labels values"),
            (r#"{"ads":{"id":"AW-1","labels":["x"]}}"#, "google.ads.labels must be"),
            (r#"{"tagId":"G-ABC123","sendPageView":1}"#, "google.sendPageView must be true or false"),
        ] {
            let e = configure("google", cfg).err().unwrap_or_else(|| panic!("{cfg} accepted"));
            assert!(e.message.contains(msg), "{cfg}: {}", e.message);
        }
        assert!(configure("google", r#"{"tagId":"GT-ABC123"}"#).is_ok());
        for ads in [r#""AW-1""#, "[]", "null", "1"] {
            let e = configure("google", &[r#"{"tagId":"G-ABC123","ads":"#, ads, "}"].concat()).err();
            let want = (ads != "null").then(|| String::from("google.ads must be an object {id, labels}; google is disabled."));
            assert_eq!(e.map(|e| e.message), want, "{ads}");
        }
    }

    #[test]
    fn unknown_ads_keys_are_warned() {
        let mut warnings = Vec::new();
        let config = crate::core::json::parse(r#"{"ads":{"id":"AW-1","labls":{"Lead":"x"}}}"#).unwrap();
        assert!(super::configure(&config, &mut warnings).is_ok());
        assert_eq!(warnings, ["Unknown config key google.ads.labls ignored (known: id, labels)"]);
    }
}

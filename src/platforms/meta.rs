//! Meta Pixel: `fbq('init')` at setup, `fbq('track' | 'trackCustom', …, {eventID})` per event, or
//! `trackSingle` / `trackSingleCustom` per pixel when several pixels are configured (so each
//! pixel gets the event exactly once, whatever other pixels the site runs itself).
//!
//! Params follow Meta's standard-event parameters. `order_id` is left out of fbq: it is not a
//! Pixel parameter (only the Conversions API's custom_data has it), and the endpoint payload
//! carries it to CAPI.

use super::{push_call, config_error, load_options, members, push_custom, Destination, SetupCtx};
use crate::core::consent::{State, AD_PERSONALIZATION};
use crate::core::error::TagError;
use crate::core::event::{write_details, write_items, Item, Standard, ValidEvent};
use crate::core::identity::Identity;
use crate::core::json::{str_array, Value, W};
use crate::core::tag::Effect;
use crate::core::text;

crate::messages! {
    PIXEL_ID_DIGITS = "m0" "must be a Pixel ID: 5 to 20 digits as a string (usually 15 or 16)";
    PIXEL_ID_REQUIRED = "m1" "is required: a Pixel ID string or an array of them";
}

pub const KEY: &str = "meta";
const KNOWN: &str = "pixelId, load, sendPageView";

pub struct Meta {
    pixels: Vec<String>,
    load: bool,
    send_page_view: bool,
}

/// Adds Pixel ID `v` to `pixels` unless it is there already; false when `v` is not a Pixel ID.
/// The id goes straight into the list, and the caller builds the one error for both of its
/// calls: a `Result` moved the error (and before it, the id) through memory at each.
fn add_pixel(pixels: &mut Vec<String>, v: &Value) -> bool {
    match v {
        Value::String(id) | Value::Number(id) if matches!(id.len(), 5..=20) && text::all(id, |b| b.is_ascii_digit()) => {
            // any(..), not Vec::contains: the wasm has no other search of a [String] to share.
            if !pixels.iter().any(|p| p == id) {
                pixels.push(id.clone());
            }
            true
        }
        _ => false,
    }
}

pub fn configure(v: &Value, warnings: &mut Vec<String>) -> Result<Box<dyn Destination>, TagError> {
    members(KEY, v, KNOWN, warnings)?;
    // Filled in place, as google::configure does: no value moved into the struct at the end.
    let mut meta = Box::new(Meta { pixels: Vec::new(), load: false, send_page_view: false });
    // The pixel errors share one config_error, built into the return value after the block.
    let (rule, bad) = 'bad: {
        match v.get("pixelId") {
            Some(Value::Array(ids)) if !ids.is_empty() => {
                if let Some(id) = ids.iter().find(|id| !add_pixel(&mut meta.pixels, id)) {
                    break 'bad (PIXEL_ID_DIGITS, id);
                }
            }
            Some(one @ (Value::String(_) | Value::Number(_))) => {
                if !add_pixel(&mut meta.pixels, one) {
                    break 'bad (PIXEL_ID_DIGITS, one);
                }
            }
            other => break 'bad (PIXEL_ID_REQUIRED, other.unwrap_or(&Value::Null)),
        }
        // Tandem owns PageView for Meta (with its event_id, so Meta can dedup it against the
        // endpoint copy); a site moving to Tandem removes fbq('track', 'PageView') from its own
        // snippet, or sets sendPageView: false to keep it (its default is true).
        load_options(KEY, v, false, &mut meta.load, &mut meta.send_page_view)?;
        return Ok(meta);
    };
    Err(config_error(KEY, "pixelId", rule, bad))
}

/// Meta's shape of the canonical params, as the next value of `w`.
fn params(w: &mut W, ev: &ValidEvent) {
    let p = &ev.params;
    w.open('{').opt_n("value", p.value.as_deref()).opt_s("currency", p.currency.as_deref());
    // `Params::ids`, written where it is read: collecting it first linked a Vec<&str> for it.
    if !p.content_ids.is_empty() || !p.contents.is_empty() {
        w.key("content_ids").open('[');
        if p.content_ids.is_empty() {
            for c in &p.contents {
                w.str(&c.id);
            }
        } else {
            for id in &p.content_ids {
                w.str(id);
            }
        }
        w.close(']');
    }
    write_items(w, "contents", p, &[(Item::Id, "id"), (Item::Quantity, "quantity")], false);
    write_details(w, p);
    push_custom(w, ev, "");
    w.close('}');
}

/// `fbq('init', id, {em, ph, …})`: advanced matching with SHA-256 hashes, which the pixel takes
/// as they are.
fn init(id: &str, identity: Option<&Identity>, out: &mut Vec<Effect>) {
    // Pushed here through push_call, with or without the hashes, instead of an Effect returned
    // for the caller to move in, and a second writer (str_array) for an init without them.
    let mut w = W::new('[');
    w.str("init").str(id);
    if let Some(identity) = identity {
        identity.write_meta(&mut w);
    }
    push_call(out, KEY, "fbq", w.end(']'));
}

impl Destination for Meta {
    fn key(&self) -> &'static str {
        KEY
    }

    fn setup(&self, ctx: &SetupCtx, out: &mut Vec<Effect>) {
        if self.load {
            out.push(Effect::LoadBaseCode { platform: KEY, args_json: str_array(&[ctx.nonce]) });
        }
        // Limited Data Use must precede init (Meta: data processing options for US users); Tandem
        // asks for it when ad_personalization is not granted (denied, or pending while a consent
        // wait runs: it cannot be lifted after init), with Meta geolocating (0, 0).
        if ctx.consent.mirrored() && !ctx.consent.granted(AD_PERSONALIZATION) {
            push_call(out, KEY, "fbq", String::from(r#"["dataProcessingOptions",["LDU"],0,0]"#));
        }
        // fbq('consent', …) before init, as Meta documents it.
        self.consent(ctx.consent, true, out);
        for id in &self.pixels {
            init(id, ctx.identity, out);
        }
    }

    /// `fbq('consent', 'grant' | 'revoke')`: the pixel sets `_fbp` and sends it with every event,
    /// so it runs only with ad_storage and ad_user_data both granted (pending is revoke).
    fn consent(&self, state: &State, _initial: bool, out: &mut Vec<Effect>) {
        if !state.mirrored() {
            return;
        }
        push_call(out, KEY, "fbq", str_array(&["consent", if state.ad_pixels() { "grant" } else { "revoke" }]));
    }

    /// Advanced matching after init: `fbq('init', id, {em, ph, …})` again with the hashes.
    fn identify(&self, identity: &Identity, out: &mut Vec<Effect>) {
        // A loop rather than map and extend, which linked its own extend for the closure.
        for id in &self.pixels {
            init(id, Some(identity), out);
        }
    }

    fn event(&self, ev: &ValidEvent, out: &mut Vec<Effect>) {
        let standard = ev.name.standard();
        if standard == Some(Standard::PageView) && !self.send_page_view {
            return;
        }
        // The args after the method (and pixel id), written once: with several pixels only those
        // differ between the calls.
        let mut tail = W(String::new());
        tail.str(ev.name.as_str());
        params(&mut tail, ev);
        tail.open('{').s("eventID", &ev.event_id).close('}');
        // One pixel: `track`; several: `trackSingle` with each pixel's id.
        let single = self.pixels.len() == 1;
        let method = match (single, standard.is_some()) {
            (true, true) => "track",
            (true, false) => "trackCustom",
            (false, true) => "trackSingle",
            (false, false) => "trackSingleCustom",
        };
        for id in &self.pixels {
            let mut w = W::new('[');
            w.str(method);
            if !single {
                w.str(id);
            }
            w.raw(&tail.0);
            push_call(out, KEY, "fbq", w.end(']'));
        }
    }
}

/// Meta's base code, as its snippet does it (a queueing `fbq` stub, then fbevents.js), with the
/// loader's CSP nonce on the injected script. Args: `[nonce]`.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(inline_js = r#"
export function load_meta(argsJson) {
  var args = JSON.parse(argsJson), w = window, d = document;
  if (w.fbq) return;
  var n = w.fbq = function () { n.callMethod ? n.callMethod.apply(n, arguments) : n.queue.push(arguments); };
  if (!w._fbq) w._fbq = n;
  n.push = n; n.loaded = true; n.version = '2.0'; n.queue = [];
  // fbevents.js sends its own PageView on every history.pushState: Tandem's page() is the one.
  n.disablePushState = true;
  try {
    var s = d.createElement('script');
    s.async = true;
    s.src = 'https://connect.facebook.net/en_US/fbevents.js';
    if (args[0]) s.nonce = args[0];
    (d.head || d.documentElement).appendChild(s);
  } catch (e) { /* a page that refuses the script (Trusted Types): the stub queues, the endpoint still gets every event */ }
}
"#)]
extern "C" {
    #[wasm_bindgen(js_name = load_meta)]
    pub fn load_base_code(args_json: &str);
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{configure, event, lines, Effects};
    use crate::core::event::Standard;

    const ONE: &str = r#"{"pixelId":"123456789012345","load":true}"#;

    fn check(config: &str, name: &str, params: &str, expected: &[&str]) {
        let d = configure("meta", config).unwrap();
        assert_eq!(lines(&d.event_effects(&event(name, params))), expected, "{name} {params}");
    }

    #[test]
    fn every_standard_event_is_tracked_by_name() {
        for st in Standard::ALL {
            let params = if *st == Standard::Purchase { r#"{"value":1,"currency":"EUR"}"# } else { "{}" };
            let want = String::from(r#"fbq["track",""#) + st.name() + "\"," + params + r#",{"eventID":"ev-1"}]"#;
            check(ONE, st.name(), params, &[&want]);
        }
    }

    #[test]
    fn custom_events_use_track_custom() {
        check(ONE, "BookDemo", r#"{"plan":"pro"}"#, &[r#"fbq["trackCustom","BookDemo",{"plan":"pro"},{"eventID":"ev-1"}]"#]);
    }

    #[test]
    fn several_pixels_use_track_single() {
        let two = r#"{"pixelId":["111111111111111","222222222222222","111111111111111"],"load":true}"#;
        check(two, "Lead", "{}", &[
            r#"fbq["trackSingle","111111111111111","Lead",{},{"eventID":"ev-1"}]"#,
            r#"fbq["trackSingle","222222222222222","Lead",{},{"eventID":"ev-1"}]"#,
        ]);
        check(two, "BookDemo", "{}", &[
            r#"fbq["trackSingleCustom","111111111111111","BookDemo",{},{"eventID":"ev-1"}]"#,
            r#"fbq["trackSingleCustom","222222222222222","BookDemo",{},{"eventID":"ev-1"}]"#,
        ]);
    }

    #[test]
    fn params_in_meta_shape() {
        check(
            ONE,
            "Purchase",
            r#"{"value":"12.50","currency":"eur","order_id":"A-1","contents":[{"id":"s1","quantity":2,"price":5,"name":"Shoe"}],
               "content_type":"product","content_name":"n","content_category":"c","num_items":2,"search_string":"q",
               "predicted_ltv":100,"status":"ok","coupon":"X"}"#,
            &[r#"fbq["track","Purchase",{"value":12.50,"currency":"EUR","content_ids":["s1"],"contents":[{"id":"s1","quantity":2}],"content_type":"product","content_name":"n","content_category":"c","num_items":2,"search_string":"q","predicted_ltv":100,"status":"ok","coupon":"X"},{"eventID":"ev-1"}]"#],
        );
        check(ONE, "ViewContent", r#"{"content_ids":["a",7]}"#, &[r#"fbq["track","ViewContent",{"content_ids":["a","7"]},{"eventID":"ev-1"}]"#]);
    }

    #[test]
    fn page_view_unless_the_site_keeps_its_own() {
        check(r#"{"pixelId":"123456789012345"}"#, "PageView", "{}", &[r#"fbq["track","PageView",{},{"eventID":"ev-1"}]"#]);
        check(r#"{"pixelId":"123456789012345","sendPageView":false}"#, "PageView", "{}", &[]);
        check(r#"{"pixelId":"123456789012345","sendPageView":true}"#, "PageView", "{}", &[r#"fbq["track","PageView",{},{"eventID":"ev-1"}]"#]);
        check(r#"{"pixelId":"123456789012345","load":true,"sendPageView":false}"#, "PageView", "{}", &[]);
    }

    #[test]
    fn setup_effects() {
        let d = configure("meta", ONE).unwrap();
        let unmanaged = crate::core::consent::State::unmanaged();
        let ctx = super::SetupCtx { nonce: "n0nce", consent: &unmanaged, identity: None };
        assert_eq!(lines(&d.setup_effects(&ctx)), [r#"load:meta["n0nce"]"#, r#"fbq["init","123456789012345"]"#]);
        let d = configure("meta", r#"{"pixelId":["111111111111111","222222222222222"]}"#).unwrap();
        assert_eq!(lines(&d.setup_effects(&ctx)), [r#"fbq["init","111111111111111"]"#, r#"fbq["init","222222222222222"]"#]);
    }

    #[test]
    fn config_errors() {
        for (cfg, msg) in [
            ("[]", "meta must be an object"),
            ("{}", "meta.pixelId is required"),
            (r#"{"pixelId":"abc"}"#, "5 to 20 digits"),
            (r#"{"pixelId":"1234"}"#, "5 to 20 digits"),
            (r#"{"pixelId":[]}"#, "is required"),
            (r#"{"pixelId":["123456789012345","x"]}"#, "5 to 20 digits"),
            (r#"{"pixelId":"123456789012345","load":"yes"}"#, "meta.load must be true or false"),
        ] {
            let e = configure("meta", cfg).err().unwrap_or_else(|| panic!("{cfg} accepted"));
            assert!(e.message.contains(msg) && e.message.ends_with("meta is disabled."), "{cfg}: {}", e.message);
        }
    }
}

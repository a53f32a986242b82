//! Browser tests for the shell, in headless Chromium (wasm-bindgen-test): `command` called the way
//! the loader calls it, against recording stubs of fbq, gtag, ttq and sendBeacon, with the page's
//! real cookies, localStorage and location.
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Reflect, JSON};
use tandem::shell::command;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const CONFIG: &str = r#"[{"endpoint":"/collect","meta":{"pixelId":"123456789012345"},"google":{"tagId":"G-TEST123","ads":{"id":"AW-987654","labels":{"Purchase":"buyLabel"}},"sendPageView":true},"tiktok":{"pixelId":"CTEST12345ABCDEFGHIJ"},"autoPageView":false}]"#;

fn eval(code: &str) -> JsValue {
    js_sys::eval(code).expect("test JS evaluates")
}

/// A clean page: no Tandem state, no cookies or storage from earlier tests, fresh recording stubs.
fn fresh_page(query: &str) {
    command("__test_reset", "[]");
    eval(&format!(
        r#"
        document.cookie.split(';').forEach(function (c) {{
          var name = c.split('=')[0].trim();
          if (name) document.cookie = name + '=; Max-Age=0; Path=/';
        }});
        localStorage.clear();
        history.replaceState(null, '', location.pathname + '{query}');
        window.__calls = [];
        function record(name) {{ return function () {{ __calls.push([name, JSON.parse(JSON.stringify(Array.prototype.slice.call(arguments)))]); }}; }}
        window.fbq = record('fbq');
        window.gtag = record('gtag');
        window.ttq = {{ track: record('ttq.track'), page: record('ttq.page') }};
        window.__beacons = [];
        navigator.sendBeacon = function (url, body) {{ __beacons.push([url, JSON.parse(body)]); return true; }};
        "#
    ));
}

fn reply(name: &str, args: &str) -> JsValue {
    JSON::parse(&command(name, args)).expect("command replies with JSON")
}

fn get(value: &JsValue, path: &str) -> JsValue {
    path.split('.').fold(value.clone(), |current, key| {
        Reflect::get(&current, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    })
}

fn calls_to(function: &str) -> Vec<Array> {
    Array::from(&eval("window.__calls"))
        .iter()
        .map(|call| Array::from(&call))
        .filter(|call| call.get(0).as_string().as_deref() == Some(function))
        .map(|call| Array::from(&call.get(1)))
        .collect()
}

fn track_purchase() -> String {
    let out = reply(
        "track",
        r#"["Purchase",{"value":49.9,"currency":"EUR","order_id":"o-1","contents":[{"id":"sku1","quantity":2,"price":24.95}]}]"#,
    );
    get(&out, "event_id").as_string().expect("a Purchase gets an event_id")
}

#[wasm_bindgen_test]
fn one_purchase_reaches_every_platform_and_the_endpoint_with_one_event_id() {
    fresh_page("");
    reply("init", CONFIG);
    let event_id = track_purchase();
    assert_eq!(event_id.len(), 36, "UUID v4: {event_id}");
    assert_eq!(&event_id[14..15], "4");

    let fbq = calls_to("fbq");
    let meta = fbq.iter().find(|args| args.get(0).as_string().as_deref() == Some("track")).expect("fbq track");
    assert_eq!(meta.get(1).as_string().as_deref(), Some("Purchase"));
    assert_eq!(get(&meta.get(3), "eventID").as_string().as_deref(), Some(event_id.as_str()));

    let gtag = calls_to("gtag");
    let ga4 = gtag.iter().find(|args| args.get(1).as_string().as_deref() == Some("purchase")).expect("gtag purchase");
    assert_eq!(get(&ga4.get(2), "event_id").as_string().as_deref(), Some(event_id.as_str()));
    assert_eq!(get(&ga4.get(2), "transaction_id").as_string().as_deref(), Some("o-1"));
    let ads = gtag.iter().find(|args| args.get(1).as_string().as_deref() == Some("conversion")).expect("Ads conversion");
    assert_eq!(get(&ads.get(2), "send_to").as_string().as_deref(), Some("AW-987654/buyLabel"));

    let tiktok = calls_to("ttq.track");
    assert_eq!(tiktok.len(), 1);
    assert_eq!(tiktok[0].get(0).as_string().as_deref(), Some("Purchase"));
    assert_eq!(get(&tiktok[0].get(2), "event_id").as_string().as_deref(), Some(event_id.as_str()));

    let beacons = Array::from(&eval("window.__beacons"));
    assert_eq!(beacons.length(), 1);
    let beacon = Array::from(&beacons.get(0));
    assert!(beacon.get(0).as_string().unwrap_or_default().ends_with("/collect"));
    let sent = get(&beacon.get(1), "events.0");
    assert_eq!(get(&sent, "event_id").as_string().as_deref(), Some(event_id.as_str()));
    assert_eq!(get(&sent, "event_name").as_string().as_deref(), Some("Purchase"));
}

#[wasm_bindgen_test]
fn landing_click_ids_are_stored_and_set_meta_cookies() {
    fresh_page("?gclid=G-click&fbclid=IwAR-Fb_Click&utm_source=news");
    reply("init", CONFIG);
    let cookies = eval("document.cookie").as_string().unwrap_or_default();
    let fbc = cookies.split("; ").find_map(|c| c.strip_prefix("_fbc=")).expect("_fbc set");
    let parts: Vec<&str> = fbc.split('.').collect();
    assert_eq!(parts.len(), 4, "{fbc}");
    assert_eq!(parts[0], "fb");
    assert_eq!(parts[2].len(), 13, "creation time in ms: {fbc}");
    assert_eq!(parts[3], "IwAR-Fb_Click");
    let fbp = cookies.split("; ").find_map(|c| c.strip_prefix("_fbp=")).expect("_fbp set");
    assert!(fbp.starts_with("fb."), "{fbp}");
    assert!(cookies.contains("_tandem_cid="), "{cookies}");
    let stored = eval("localStorage.getItem('tandem:attribution')").as_string().expect("attribution stored");
    assert!(stored.contains("G-click"), "{stored}");

    // A later page without parameters still attaches the click IDs to endpoint events.
    command("__test_reset", "[]");
    eval("history.replaceState(null, '', location.pathname); window.__beacons = [];");
    reply("init", CONFIG);
    track_purchase();
    let sent = get(&Array::from(&eval("window.__beacons")).get(0), "1.events.0");
    assert_eq!(get(&sent, "click_ids.gclid.value").as_string().as_deref(), Some("G-click"));
    assert_eq!(get(&sent, "user_data.fbc").as_string().as_deref(), Some(fbc));
}

#[wasm_bindgen_test]
fn a_missing_or_throwing_platform_never_stops_the_others() {
    fresh_page("");
    eval("delete window.ttq; window.fbq = function () { throw new Error('broken pixel'); };");
    reply("init", CONFIG);
    let event_id = track_purchase();
    assert!(calls_to("gtag").iter().any(|args| get(&args.get(2), "event_id").as_string().as_deref() == Some(event_id.as_str())));
    assert_eq!(Array::from(&eval("window.__beacons")).length(), 1);
}

#[wasm_bindgen_test]
fn rejected_input_is_an_error_value_not_an_exception() {
    fresh_page("");
    let before_init = reply("track", r#"["Purchase"]"#);
    assert_eq!(get(&before_init, "errors.0.code").as_string().as_deref(), Some("not_initialized"));
    reply("init", CONFIG);
    let no_name = reply("track", "[null]");
    assert!(get(&no_name, "event_id").is_null());
    assert!(get(&no_name, "errors.0.message").as_string().is_some());
    let no_currency = reply("track", r#"["Purchase",{"value":10}]"#);
    assert!(get(&no_currency, "event_id").is_null());
    assert!(get(&no_currency, "errors.0.message").as_string().unwrap_or_default().contains("currency"));
    let garbage = reply("track", "not json at all");
    assert!(get(&garbage, "errors").is_object());
    assert_eq!(Array::from(&eval("window.__beacons")).length(), 0, "nothing rejected was sent");
    track_purchase();
}

#[wasm_bindgen_test]
fn the_same_event_id_tracked_twice_goes_out_once() {
    fresh_page("");
    reply("init", CONFIG);
    let args = r#"["Lead",{},{"eventId":"lead-42"}]"#;
    let first = reply("track", args);
    let second = reply("track", args);
    assert_eq!(get(&first, "event_id").as_string().as_deref(), Some("lead-42"));
    assert_eq!(get(&second, "event_id").as_string().as_deref(), Some("lead-42"));
    assert_eq!(Array::from(&eval("window.__beacons")).length(), 1);
    assert_eq!(calls_to("ttq.track").len(), 1);
}

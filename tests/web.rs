//! Browser tests for the shell, in headless Chromium (wasm-bindgen-test): `command` called the way
//! the loader calls it, against recording stubs of fbq, gtag, ttq and sendBeacon, with the page's
//! real cookies, localStorage and location.
#![cfg(target_arch = "wasm32")]

use js_sys::{Array, Reflect, JSON};
use tandem::shell::command;
use wasm_bindgen::JsValue;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const CONFIG: &str = r#"[{"endpoint":"/collect","meta":{"pixelId":"123456789012345"},"google":{"tagId":"G-TEST123","ads":{"id":"AW-987654","labels":{"Purchase":"buyLabel"}},"sendPageView":true},"tiktok":{"pixelId":"CTEST12345ABCDEFGHIJ"},"autoPageView":false,"batch":{"windowMs":0}}]"#;

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
        // The transport's fetch: recorded like a beacon, answered from __statuses (0: a network error).
        window.__statuses = [];
        window.__fetches = [];
        window.fetch = function (url, init) {{
          var body = JSON.parse(init.body);
          __beacons.push([url, body]);
          __fetches.push([url, body, init.keepalive]);
          var status = __statuses.length ? __statuses.shift() : 200;
          return status ? Promise.resolve({{ status: status }}) : Promise.reject(new TypeError('Failed to fetch'));
        }};
        "#
    ));
}

/// The reply as the loader reads it (www/loader.js, `readReply`): JSON when there is something to
/// report, else the bare event_id (empty for none).
fn reply(name: &str, args: &str) -> JsValue {
    let text = command(name, args);
    if text.starts_with('{') {
        return JSON::parse(&text).expect("a reply that starts with { is JSON");
    }
    let out = js_sys::Object::new();
    let id = if text.is_empty() { JsValue::NULL } else { JsValue::from_str(&text) };
    Reflect::set(&out, &JsValue::from_str("event_id"), &id).expect("a plain object takes a property");
    out.into()
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
async fn one_purchase_reaches_every_platform_and_the_endpoint_with_one_event_id() {
    fresh_page("");
    install_relay();
    reply("init", CONFIG);
    let event_id = track_purchase();
    assert_eq!(Array::from(&eval("window.__beacons")).length(), 0, "the endpoint request goes at the end of the task");
    end_of_task().await;
    assert_eq!(event_id, "o-o-1", "a Purchase without eventId is named by its order id");

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
async fn landing_click_ids_are_stored_and_set_meta_cookies() {
    fresh_page("?gclid=G-click&fbclid=IwAR-Fb_Click&utm_source=news");
    install_relay();
    reply("init", CONFIG);
    sleep(1).await;
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
    end_of_task().await;
    let sent = get(&Array::from(&eval("window.__beacons")).get(0), "1.events.0");
    assert_eq!(get(&sent, "click_ids.gclid.value").as_string().as_deref(), Some("G-click"));
    assert_eq!(get(&sent, "user_data.fbc").as_string().as_deref(), Some(fbc));
}

#[wasm_bindgen_test]
async fn a_missing_or_throwing_platform_never_stops_the_others() {
    fresh_page("");
    install_relay();
    eval("delete window.ttq; window.fbq = function () { throw new Error('broken pixel'); };");
    reply("init", CONFIG);
    let event_id = track_purchase();
    end_of_task().await;
    assert!(calls_to("gtag").iter().any(|args| get(&args.get(2), "event_id").as_string().as_deref() == Some(event_id.as_str())));
    assert_eq!(Array::from(&eval("window.__beacons")).length(), 1);
}

#[wasm_bindgen_test]
async fn blocked_storage_and_cookies_never_stop_an_event() {
    fresh_page("?gclid=G-blocked");
    install_relay();
    // As in a sandboxed iframe or with site data blocked: each access throws a SecurityError.
    eval(
        r#"
        window.__storage = Object.getOwnPropertyDescriptor(window, 'localStorage');
        Object.defineProperty(window, 'localStorage', { configurable: true, get: function () { throw new DOMException('blocked', 'SecurityError'); } });
        Object.defineProperty(document, 'cookie', { configurable: true, get: function () { throw new DOMException('blocked', 'SecurityError'); }, set: function () { throw new DOMException('blocked', 'SecurityError'); } });
        "#,
    );
    reply("init", CONFIG);
    let out = reply("track", r#"["Lead",{},{"eventId":"blocked-1"}]"#);
    // The platform calls and the endpoint event are made at the end of the task, still blocked.
    end_of_task().await;
    eval("Object.defineProperty(window, 'localStorage', window.__storage); delete document.cookie;");
    assert_eq!(get(&out, "event_id").as_string().as_deref(), Some("blocked-1"));
    assert_eq!(calls_to("ttq.track").len(), 1);
    let sent = get(&Array::from(&eval("window.__beacons")).get(0), "1.events.0");
    assert_eq!(get(&sent, "event_id").as_string().as_deref(), Some("blocked-1"));
    assert_eq!(get(&sent, "click_ids.gclid.value").as_string().as_deref(), Some("G-blocked"));
}

#[wasm_bindgen_test]
fn event_ids_stay_random_without_crypto() {
    fresh_page("");
    reply("init", CONFIG);
    eval("window.__getRandomValues = crypto.getRandomValues; crypto.getRandomValues = function () { throw new Error('no crypto'); };");
    // Random bytes come from a 128-byte pool: 12 ids (192 bytes) refill it without crypto at least once.
    let ids: Vec<String> = (0..12).map(|_| get(&reply("track", r#"["Lead"]"#), "event_id").as_string().unwrap_or_default()).collect();
    eval("crypto.getRandomValues = window.__getRandomValues;");
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(id.len(), 36, "UUID v4: {id}");
        assert_eq!(&id[14..15], "4", "UUID v4: {id}");
        assert!(ids[..i].iter().all(|earlier| earlier != id), "{id} repeated");
    }
}

#[wasm_bindgen_test]
async fn rejected_input_is_an_error_value_not_an_exception() {
    fresh_page("");
    install_relay();
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
    end_of_task().await;
    assert_eq!(Array::from(&eval("window.__beacons")).length(), 0, "nothing rejected was sent");
    track_purchase();
}

/// GA4's event-name rule is checked with the browser's Unicode classes in the wasm (the shell's
/// `privacy_name_fault`, which keeps Rust's tables out of the download): they must answer as
/// Rust's own do natively, for names in many scripts.
#[wasm_bindgen_test]
async fn custom_event_names_follow_the_rule_in_any_script_as_natively() {
    fresh_page("");
    install_relay();
    reply("init", CONFIG);
    let names = [
        "signup_done", "Käufe", "名前", "कि", "a٣", "ÆbleKøb", "Δοκιμή_2", "ꓐꓳ", "x", "ǅungla", "a\u{2160}",
        "1st", "_x", "٣a", "a-b", "a b", "ok!", "emoji😀", "a\u{200d}b", "\u{0301}a", "a.b", "tab\t",
    ];
    for name in names {
        let json_name = JSON::stringify(&JsValue::from_str(name)).ok().and_then(|s| s.as_string()).expect("a string stringifies");
        let out = reply("track", &format!("[{json_name}]"));
        let message = get(&out, "errors.0.message").as_string().unwrap_or_default();
        match tandem::core::unicode::rust_name_fault_code(name) {
            0 => assert!(get(&out, "event_id").is_string(), "{name:?} is a valid name: {message}"),
            1 => assert!(message.contains("must start with a letter"), "{name:?}: {message}"),
            _ => assert!(message.contains("may contain only letters, digits and underscores"), "{name:?}: {message}"),
        }
    }
    end_of_task().await;
}

#[wasm_bindgen_test]
async fn a_reply_is_the_bare_event_id_unless_there_is_something_to_report() {
    fresh_page("");
    install_relay();
    assert_eq!(command("init", CONFIG), "", "nothing to report, no event");
    assert_eq!(command("track", r#"["Lead",{},{"eventId":"bare-1"}]"#), "bare-1");
    let random = command("track", r#"["Lead"]"#);
    assert!(random.len() == 36 && !random.starts_with('{'), "a UUID, bare: {random}");
    // A double keeps its id and says why nothing was sent: JSON.
    let double = command("track", r#"["Lead",{},{"eventId":"bare-1"}]"#);
    let parsed = JSON::parse(&double).expect("a reply with a warning is JSON");
    assert_eq!(get(&parsed, "event_id").as_string().as_deref(), Some("bare-1"));
    assert!(get(&parsed, "warnings.0").as_string().unwrap_or_default().contains("already sent"));
    let rejected = JSON::parse(&command("track", "[null]")).expect("a reply with an error is JSON");
    assert!(get(&rejected, "event_id").is_null());
    assert!(get(&rejected, "errors.0.code").as_string().is_some());
    end_of_task().await;
    assert_eq!(Array::from(&eval("window.__beacons")).length(), 1, "bare-1 and the UUID in one request");
}

#[wasm_bindgen_test]
async fn each_event_has_the_url_it_was_tracked_at_across_route_changes() {
    fresh_page("?view=a");
    install_relay();
    command("init", CONFIG);
    // Each track reads the URL when it is called, not when its effects are built at the end of
    // the task: a route change between two calls, and back, reaches each event.
    command("track", r#"["Lead",{},{"eventId":"url-1"}]"#);
    command("track", r#"["Lead",{},{"eventId":"url-2"}]"#);
    eval("history.pushState(null, '', location.pathname + '?view=b')");
    command("track", r#"["Lead",{},{"eventId":"url-3"}]"#);
    eval("history.pushState(null, '', location.pathname + '?view=a')");
    command("track", r#"["Lead",{},{"eventId":"url-4"}]"#);
    end_of_task().await;
    let sent = get(&Array::from(&eval("window.__beacons")).get(0), "1.events");
    let views: Vec<String> = Array::from(&sent)
        .iter()
        .map(|ev| get(&ev, "event_source_url").as_string().unwrap_or_default())
        .map(|url| url.rsplit('?').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(views, ["view=a", "view=a", "view=b", "view=a"]);
}

#[wasm_bindgen_test]
async fn the_same_event_id_tracked_twice_goes_out_once() {
    fresh_page("");
    install_relay();
    reply("init", CONFIG);
    let args = r#"["Lead",{},{"eventId":"lead-42"}]"#;
    let first = reply("track", args);
    let second = reply("track", args);
    end_of_task().await;
    assert_eq!(get(&first, "event_id").as_string().as_deref(), Some("lead-42"));
    assert_eq!(get(&second, "event_id").as_string().as_deref(), Some("lead-42"));
    assert_eq!(Array::from(&eval("window.__beacons")).length(), 1);
    assert_eq!(calls_to("ttq.track").len(), 1);
}

// ---------------------------------------------------------------- delivery (shell/transport.rs)

use wasm_bindgen::closure::Closure;

thread_local! {
    /// The loader's per-page object holding storage writes not yet made; one for the whole run,
    /// as one page keeps one across instances.
    static SHARED: js_sys::Object = js_sys::Object::new();
}

/// The loader's relay, played by the test: timers and fetch results come back into `command`.
fn install_relay() {
    let relay = Closure::<dyn FnMut(String, JsValue)>::new(|name: String, args: JsValue| {
        let json = JSON::stringify(&args).ok().and_then(|s| s.as_string()).unwrap_or_else(|| String::from("[]"));
        command(&name, &json);
    });
    let shared = SHARED.with(|s| JsValue::from(s.clone()));
    tandem::shell::transport::set_relay(relay.as_ref(), "webtest", &shared);
    relay.forget();
}

/// Lets the current task end (its microtasks run: that is when a due batch is sent).
async fn end_of_task() {
    let _ = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::resolve(&JsValue::NULL)).await;
    sleep(0).await;
}

async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let window = web_sys::window().expect("window");
        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

fn config_with(batch: &str) -> String {
    CONFIG.replace(r#""batch":{"windowMs":0}"#, batch)
}

fn fetched_ids() -> Vec<Vec<String>> {
    Array::from(&eval("window.__fetches"))
        .iter()
        .map(|f| {
            let events = Array::from(&get(&Array::from(&f).get(1), "events"));
            events.iter().map(|e| get(&e, "event_id").as_string().unwrap_or_default()).collect()
        })
        .collect()
}

fn queue_key() -> Option<String> {
    eval("localStorage.getItem('tandem:q:webtest')").as_string()
}

#[wasm_bindgen_test]
async fn events_close_in_time_go_in_one_request() {
    fresh_page("");
    install_relay();
    reply("init", &config_with(r#""batch":{"windowMs":150}"#));
    for id in ["b-1", "b-2", "b-3"] {
        reply("track", &(String::from(r#"["Lead",{},{"eventId":""#) + id + "\"}]"));
    }
    assert!(fetched_ids().is_empty(), "nothing before the window closes");
    assert_eq!(queue_key(), None, "not written inside track()");
    sleep(1).await;
    assert!(queue_key().unwrap_or_default().contains("b-3"), "the waiting events are persisted in the next task");
    sleep(400).await;
    assert_eq!(fetched_ids(), [["b-1", "b-2", "b-3"]]);
    assert_eq!(get(&Array::from(&eval("window.__fetches")).get(0), "2").as_bool(), Some(true), "keepalive");
    assert_eq!(queue_key(), None, "delivered: the queue is gone from storage");
}

#[wasm_bindgen_test]
async fn a_5xx_or_network_error_is_retried_with_the_same_event_id() {
    fresh_page("");
    install_relay();
    eval("window.__statuses = [503, 0];");
    reply("init", CONFIG);
    reply("track", r#"["Lead",{},{"eventId":"r-1"}]"#);
    sleep(50).await;
    assert_eq!(fetched_ids(), [["r-1"]]);
    assert!(queue_key().unwrap_or_default().contains("r-1"), "kept while undelivered");
    // 503, then a network error, then 200: backoff 0.5-1 s, then 1-2 s.
    sleep(3300).await;
    assert_eq!(fetched_ids(), [["r-1"], ["r-1"], ["r-1"]]);
    assert_eq!(queue_key(), None);
}

#[wasm_bindgen_test]
async fn a_4xx_is_reported_and_not_retried() {
    fresh_page("");
    install_relay();
    eval("window.__statuses = [400];");
    reply("init", CONFIG);
    reply("track", r#"["Lead",{},{"eventId":"bad-1"}]"#);
    sleep(1500).await;
    assert_eq!(fetched_ids(), [["bad-1"]]);
    assert_eq!(queue_key(), None);
}

#[wasm_bindgen_test]
fn pagehide_hands_the_waiting_events_to_send_beacon() {
    fresh_page("");
    install_relay();
    reply("init", &config_with(r#""batch":{"windowMs":5000}"#));
    reply("track", r#"["Lead",{},{"eventId":"u-1"}]"#);
    reply("track", r#"["Lead",{},{"eventId":"u-2"}]"#);
    eval("window.__beacons = [];");
    reply("__flush", r#"["pagehide"]"#);
    let beacons = Array::from(&eval("window.__beacons"));
    assert_eq!(beacons.length(), 1, "one beacon for both");
    assert_eq!(get(&Array::from(&beacons.get(0)).get(1), "events.length").as_f64(), Some(2.0));
    assert_eq!(queue_key(), None, "handed over: nothing left for the next page");
    assert!(fetched_ids().is_empty());
}

#[wasm_bindgen_test]
async fn a_restarted_instance_adopts_this_tabs_persisted_queue() {
    fresh_page("");
    install_relay();
    eval("window.__statuses = [0];");
    reply("init", CONFIG);
    reply("track", r#"["Lead",{},{"eventId":"p-1"}]"#);
    sleep(50).await;
    assert!(queue_key().unwrap_or_default().contains("p-1"));
    // A crash and restart: a fresh core, the same tab id from the loader.
    command("__test_reset", "[]");
    reply("init", CONFIG);
    // Adopted events wait a second (outbox::ADOPT_DELAY_MS) for an answer to the crashed instance.
    sleep(1200).await;
    let ids = fetched_ids();
    assert_eq!(ids.first().map(Vec::as_slice), Some(&[String::from("p-1")][..]));
    assert!(ids.iter().skip(1).all(|batch| batch == &[String::from("p-1")]), "{ids:?}");
    sleep(50).await;
    assert_eq!(queue_key(), None);
}

#[wasm_bindgen_test]
fn a_write_not_yet_made_is_made_when_the_page_goes_away() {
    fresh_page("");
    install_relay();
    // Nothing can be handed over: the events must be left in storage for the next page.
    eval("navigator.sendBeacon = function () { return false; }; window.fetch = function () { throw new Error('offline'); };");
    reply("init", &config_with(r#""batch":{"windowMs":5000}"#));
    reply("track", r#"["Lead",{},{"eventId":"h-1"}]"#);
    assert_eq!(queue_key(), None, "not written inside track()");
    reply("__flush", r#"["pagehide"]"#);
    let stored = queue_key().unwrap_or_default();
    assert!(stored.starts_with(r#"{"until":0,"#) && stored.contains("h-1"), "written at once, lease released: {stored}");
}

#[wasm_bindgen_test]
async fn a_write_pending_when_the_instance_crashes_is_made_before_the_fresh_one_reads_storage() {
    fresh_page("");
    install_relay();
    reply("init", &config_with(r#""batch":{"windowMs":300}"#));
    reply("track", r#"["Lead",{},{"eventId":"c-1"}]"#);
    assert_eq!(queue_key(), None);
    // A crash right after track(): the core and outbox are gone; the loader's shared object is not.
    command("__test_reset", "[]");
    install_relay();
    assert!(queue_key().unwrap_or_default().contains("c-1"), "written when the fresh instance got the relay");
    reply("restore", &config_with(r#""batch":{"windowMs":300}"#));
    sleep(1300).await;
    assert_eq!(fetched_ids(), [["c-1"]], "sent once, by the fresh instance");
    sleep(1).await;
    assert_eq!(queue_key(), None);
}

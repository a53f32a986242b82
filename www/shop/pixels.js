// Demo only: local recording stand-ins for the site's own Meta Pixel (fbq), Google tag (gtag) and
// TikTok Pixel (ttq). A real shop has the platforms' base code here; the demo has no internet, so
// these record every call into the log panel instead (sessionStorage, so it survives navigation).
// It also watches sendBeacon / fetch to the endpoint so the panel shows what the tag posted.
(function () {
  var KEY = 'shop:log';
  var MAX = 300;

  function load() {
    try { return JSON.parse(sessionStorage.getItem(KEY) || '[]'); } catch (e) { return []; }
  }
  function save(list) {
    try { sessionStorage.setItem(KEY, JSON.stringify(list.slice(-MAX))); } catch (e) { /* quota: the panel just forgets */ }
  }
  function safe(v) {
    var seen = [];
    try {
      return JSON.stringify(v, function (k, x) {
        if (typeof x === 'bigint') return String(x) + 'n';
        if (typeof x === 'function') return '[function]';
        if (x && typeof x === 'object') { if (seen.indexOf(x) !== -1) return '[circular]'; seen.push(x); }
        return x;
      });
    } catch (e) { return '[unprintable]'; }
  }

  var shopLog = (window.shopLog = {
    entries: load(),
    add: function (entry) {
      entry.t = Date.now();
      entry.page = location.pathname;
      shopLog.entries.push(entry);
      save(shopLog.entries);
      try { window.dispatchEvent(new CustomEvent('shoplog', { detail: entry })); } catch (e) { /* old browser */ }
    },
    clear: function () { shopLog.entries = []; save([]); try { window.dispatchEvent(new CustomEvent('shoplog')); } catch (e) {} },
  });

  function idFrom(o, key) { return o && typeof o === 'object' && typeof o[key] === 'string' ? o[key] : ''; }
  function args(a) { return Array.prototype.slice.call(a); }

  // Meta Pixel: fbq('track', name, params, { eventID })
  var fbq = function () {
    var a = args(arguments);
    var opts = a[0] === 'trackSingle' || a[0] === 'trackSingleCustom' ? a[4] : a[3];
    shopLog.add({ kind: 'pixel', platform: 'meta', fn: 'fbq(' + safe(a[0]) + ')', args: safe(a.slice(1)), eventId: idFrom(opts, 'eventID') });
  };
  fbq.loaded = true; fbq.version = '2.0'; fbq.queue = []; fbq.push = fbq;
  window.fbq = window._fbq = fbq;

  // Google tag: gtag('event', name, { event_id, send_to, ... })
  window.dataLayer = window.dataLayer || [];
  window.gtag = function gtag() {
    var a = args(arguments);
    window.dataLayer.push(arguments);
    shopLog.add({ kind: 'pixel', platform: 'google', fn: 'gtag(' + safe(a[0]) + ', ' + safe(a[1]) + ')', args: safe(a.slice(2)), eventId: idFrom(a[2], 'event_id') || idFrom(a[2], 'transaction_id') });
  };

  // TikTok Pixel: ttq.track(name, props, { event_id }), ttq.page()
  var methods = ['track', 'page', 'identify', 'instance', 'holdConsent', 'grantConsent', 'revokeConsent', 'load', 'ready'];
  function makeTtq(prefix) {
    var o = [];
    methods.forEach(function (m) {
      o[m] = function () {
        var a = args(arguments);
        shopLog.add({ kind: 'pixel', platform: 'tiktok', fn: prefix + m + '()', args: safe(a), eventId: idFrom(m === 'track' ? a[2] : a[1], 'event_id') });
        return m === 'instance' ? makeTtq('ttq.instance(' + a[0] + ').') : o;
      };
    });
    return o;
  }
  window.TiktokAnalyticsObject = 'ttq';
  window.ttq = makeTtq('ttq.');
  window.ttq.methods = methods;

  // What the tag posts to the endpoint.
  function logBeacon(via, url, body, ok) {
    var text = typeof body === 'string' ? body : '';
    var events = [];
    try { events = JSON.parse(text).events || []; } catch (e) { /* Blob or FormData: not shown */ }
    if (!events.length) {
      shopLog.add({ kind: 'beacon', platform: 'endpoint', fn: via + ' ' + url, args: text ? text.slice(0, 300) : '(binary body)', eventId: '', ok: ok });
    }
    events.forEach(function (ev) {
      shopLog.add({ kind: 'beacon', platform: 'endpoint', fn: via + ' ' + (ev.event_name || '?'), args: safe(ev.custom_data || {}), eventId: ev.event_id || '', ok: ok, clickIds: Object.keys(ev.click_ids || {}).join(', ') });
    });
  }
  function isEndpoint(url) {
    try { return /\/collect$/.test(new URL(String(url), location.href).pathname); } catch (e) { return false; }
  }
  if (navigator.sendBeacon) {
    var beacon = navigator.sendBeacon.bind(navigator);
    navigator.sendBeacon = function (url, data) {
      var ok = beacon(url, data);
      if (isEndpoint(url)) try { logBeacon('sendBeacon', url, data, ok); } catch (e) { /* never break the tag */ }
      return ok;
    };
  }
  if (window.fetch) {
    var fetch_ = window.fetch;
    window.fetch = function (input, init) {
      var url = typeof input === 'string' ? input : input && input.url;
      if (isEndpoint(url) && init && init.method === 'POST') try { logBeacon('fetch', url, init.body, undefined); } catch (e) { /* ignore */ }
      return fetch_.apply(this, arguments);
    };
  }
})();

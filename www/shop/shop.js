// The demo shop: catalogue, cart, the tandem calls each page makes, and the log panel.
// Loaded in <head> right after the Tandem snippet; it calls tandem('init') at once (the call is
// queued until the loader arrives), and does the page's work when the DOM is ready.
(function () {
  'use strict';

  var CURRENCY = 'EUR';
  var PRODUCTS = [
    { id: 'sku-mug', name: 'Stoneware mug', price: 18.0, hue: 24, blurb: 'Hand-glazed, 350 ml, dishwasher safe.' },
    { id: 'sku-tee', name: 'Organic tee', price: 29.9, hue: 200, blurb: 'Heavyweight cotton, relaxed fit.' },
    { id: 'sku-cap', name: 'Field cap', price: 24.5, hue: 140, blurb: 'Six panels, brass buckle.' },
    { id: 'sku-tote', name: 'Canvas tote', price: 14.95, hue: 320, blurb: 'Carries a week of groceries.' },
  ];
  var AD_CLICK = '/?gclid=TeSt-gclid&fbclid=IwAR-test&ttclid=E.C.P.test&utm_source=demo&utm_medium=cpc&utm_campaign=launch';

  // ------------------------------------------------------------------ Tandem

  tandem('init', {
    endpoint: '/collect',
    meta: { pixelId: '1234567890123456', load: false },
    google: { tagId: 'G-DEMO123456', ads: { id: 'AW-987654321', labels: { Purchase: 'dEmOpUrChAsE', Lead: 'dEmOlEaD' } }, load: false, sendPageView: true },
    tiktok: { pixelId: 'CDEMOPIXEL0000000000', load: false },
    debug: true,
    onError: function (err) {
      window.shopLog && window.shopLog.add({ kind: 'error', platform: 'tandem', fn: 'onError ' + err.code, args: err.message + (err.input ? '  input: ' + err.input : ''), eventId: '' });
    },
  });

  function track(name, params, options) {
    var id = tandem('track', name, params, options);
    // Before the loader is live the stub returns undefined: the call is queued and replayed.
    return id === undefined ? (options && options.eventId) || '(queued)' : id;
  }

  // ------------------------------------------------------------------ storage helpers

  function get(store, key, fallback) {
    try { var v = store.getItem(key); return v ? JSON.parse(v) : fallback; } catch (e) { return fallback; }
  }
  function put(store, key, value) {
    try { store.setItem(key, JSON.stringify(value)); } catch (e) { /* private mode / quota */ }
  }
  function cart() { return get(localStorage, 'shop:cart', []); }
  function setCart(c) { put(localStorage, 'shop:cart', c); renderCartCount(); }
  function product(id) { for (var i = 0; i < PRODUCTS.length; i++) if (PRODUCTS[i].id === id) return PRODUCTS[i]; return null; }
  function money(v) { return new Intl.NumberFormat('en-IE', { style: 'currency', currency: CURRENCY }).format(v); }
  function round2(v) { return Math.round(v * 100) / 100; }
  function cartLines() {
    return cart().map(function (l) { var p = product(l.id); return p ? { p: p, qty: l.qty } : null; }).filter(Boolean);
  }
  function cartTotal(lines) { return round2(lines.reduce(function (s, l) { return s + l.p.price * l.qty; }, 0)); }
  function contents(lines) { return lines.map(function (l) { return { id: l.p.id, quantity: l.qty, item_price: l.p.price, title: l.p.name }; }); }
  function qs(name) { return new URLSearchParams(location.search).get(name); }

  // ------------------------------------------------------------------ tiny DOM helper

  function h(tag, attrs) {
    var el = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === 'text') el.textContent = attrs[k];
      else if (k === 'class') el.className = attrs[k];
      else if (k.slice(0, 2) === 'on') el.addEventListener(k.slice(2), attrs[k]);
      else el.setAttribute(k, attrs[k]);
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c == null) continue;
      el.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    }
    return el;
  }
  function swatch(p, big) { return h('div', { class: 'swatch' + (big ? ' big' : ''), style: '--hue:' + p.hue }, h('span', { text: p.name.charAt(0) })); }
  function notice(text) {
    var n = document.getElementById('notice');
    if (!n) return;
    n.textContent = text;
    n.hidden = false;
  }

  // ------------------------------------------------------------------ pages

  var pages = {
    index: function (main) {
      var grid = h('div', { class: 'grid' });
      PRODUCTS.forEach(function (p) {
        grid.appendChild(h('a', { class: 'card', href: '/product.html?id=' + p.id, 'data-product': p.id },
          swatch(p), h('h3', { text: p.name }), h('p', { class: 'muted', text: p.blurb }), h('strong', { text: money(p.price) })));
      });
      main.appendChild(grid);
    },

    product: function (main) {
      var p = product(qs('id')) || PRODUCTS[0];
      document.title = p.name + ' · Tandem demo shop';
      var viewId = track('ViewContent', { content_ids: [p.id], content_type: 'product', content_name: p.name, value: p.price, currency: CURRENCY, contents: [{ id: p.id, quantity: 1, item_price: p.price }] });
      var qty = h('input', { type: 'number', min: '1', max: '9', value: '1', id: 'qty', 'aria-label': 'Quantity' });
      main.appendChild(h('div', { class: 'product' }, swatch(p, true),
        h('div', {},
          h('h1', { text: p.name }), h('p', { class: 'muted', text: p.blurb }), h('p', { class: 'price', text: money(p.price) }),
          h('div', { class: 'row' }, qty, h('button', { id: 'add-to-cart', class: 'primary', onclick: function () {
            var n = Math.max(1, Math.min(9, parseInt(qty.value, 10) || 1));
            var c = cart();
            var line = c.filter(function (l) { return l.id === p.id; })[0];
            if (line) line.qty += n; else c.push({ id: p.id, qty: n });
            setCart(c);
            var id = track('AddToCart', { content_ids: [p.id], content_type: 'product', content_name: p.name, value: round2(p.price * n), currency: CURRENCY, contents: [{ id: p.id, quantity: n, item_price: p.price }] });
            notice('Added ' + n + ' × ' + p.name + ' to the cart (event_id ' + id + ').');
          } }, 'Add to cart'), h('a', { class: 'button', href: '/cart.html' }, 'View cart')),
          h('p', { class: 'small muted', id: 'view-id', text: 'ViewContent event_id: ' + (viewId === '(queued)' ? '(queued until the tag loads: see the log)' : viewId) }))));
    },

    cart: function (main) {
      var lines = cartLines();
      main.appendChild(h('h1', { text: 'Your cart' }));
      if (!lines.length) {
        main.appendChild(h('p', { class: 'muted' }, 'The cart is empty. ', h('a', { href: '/' }, 'Browse the shop')));
        return;
      }
      main.appendChild(linesTable(lines));
      main.appendChild(h('div', { class: 'row end' },
        h('button', { class: 'ghost', onclick: function () { setCart([]); location.reload(); } }, 'Empty cart'),
        h('button', { id: 'checkout', class: 'primary', onclick: function () {
          track('InitiateCheckout', { content_ids: lines.map(function (l) { return l.p.id; }), content_type: 'product', num_items: lines.reduce(function (s, l) { return s + l.qty; }, 0), value: cartTotal(lines), currency: CURRENCY, contents: contents(lines) });
          location.href = '/checkout.html';
        } }, 'Proceed to checkout')));
    },

    checkout: function (main) {
      var lines = cartLines();
      main.appendChild(h('h1', { text: 'Checkout' }));
      if (!lines.length) {
        main.appendChild(h('p', { class: 'muted' }, 'Nothing to pay for. ', h('a', { href: '/' }, 'Browse the shop')));
        return;
      }
      main.appendChild(linesTable(lines));
      var total = cartTotal(lines);
      var paid = false;
      var form = h('form', { class: 'checkout', id: 'checkout-form' },
        h('fieldset', {}, h('legend', { text: 'Payment' }),
          h('label', {}, h('input', { type: 'radio', name: 'pay', value: 'card' }), ' Card'),
          h('label', {}, h('input', { type: 'radio', name: 'pay', value: 'paypal' }), ' PayPal'),
          h('label', {}, h('input', { type: 'radio', name: 'pay', value: 'invoice' }), ' Invoice')),
        h('div', { class: 'row end' }, h('button', { id: 'place-order', class: 'primary', type: 'submit' }, 'Place order · ' + money(total))));
      form.addEventListener('change', function (e) {
        if (e.target.name !== 'pay' || paid) return;
        paid = true;
        track('AddPaymentInfo', { value: total, currency: CURRENCY, content_ids: lines.map(function (l) { return l.p.id; }), payment_type: e.target.value });
      });
      form.addEventListener('submit', function (e) {
        e.preventDefault();
        if (!form.querySelector('input[name=pay]:checked')) { notice('Choose a payment method first.'); return; }
        var orderId = 'ord-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2, 7);
        var id = track('Purchase', { value: total, currency: CURRENCY, order_id: orderId, content_type: 'product', contents: contents(lines), num_items: lines.reduce(function (s, l) { return s + l.qty; }, 0) }, { eventId: orderId });
        var orders = get(sessionStorage, 'shop:orders', {});
        orders[orderId] = { eventId: id, total: total, items: lines.length, sent: true };
        put(sessionStorage, 'shop:orders', orders);
        setCart([]);
        // The tag sends with sendBeacon (or fetch keepalive), so navigating right away loses nothing.
        location.href = '/thank-you.html?order=' + encodeURIComponent(orderId);
      });
      main.appendChild(form);
    },

    'thank-you': function (main) {
      var orderId = qs('order') || '';
      var orders = get(sessionStorage, 'shop:orders', {});
      var order = orders[orderId];
      main.appendChild(h('h1', { text: 'Thank you!' }));
      if (!orderId) { main.appendChild(h('p', { class: 'muted', text: 'No order given.' })); return; }
      var status;
      if (order && order.sent) {
        status = 'The Purchase for this order was already sent; reloading this page does not send it again.';
      } else {
        // Landed here without the checkout (a link from the confirmation e-mail, a new tab): send it
        // now, once. The tag also remembers order ids it has sent and refuses a second Purchase.
        var id = track('Purchase', { value: 0, currency: CURRENCY, order_id: orderId }, { eventId: orderId });
        order = orders[orderId] = { eventId: id, total: 0, items: 0, sent: true };
        put(sessionStorage, 'shop:orders', orders);
        status = 'The Purchase for this order was sent from this page.';
      }
      main.appendChild(h('dl', { class: 'facts' },
        h('dt', { text: 'Order id' }), h('dd', { id: 'order-id', text: orderId }),
        h('dt', { text: 'event_id' }), h('dd', { id: 'event-id', text: order.eventId || orderId }),
        h('dt', { text: 'Total' }), h('dd', { text: money(order.total || 0) })));
      main.appendChild(h('p', { class: 'muted', id: 'purchase-status', text: status }));
      main.appendChild(h('div', { class: 'row' },
        h('button', { class: 'ghost', id: 'resend', onclick: function () {
          var r = tandem('track', 'Purchase', { value: order.total || 0, currency: CURRENCY, order_id: orderId }, { eventId: orderId });
          notice(r ? 'The tag accepted it again (' + r + '): check the log.' : 'The tag refused the repeat Purchase (see the log): order ids are deduplicated.');
        } }, 'Try sending the Purchase again'),
        h('a', { class: 'button', href: '/' }, 'Back to the shop')));
    },
  };

  function linesTable(lines) {
    var body = h('tbody');
    lines.forEach(function (l) {
      body.appendChild(h('tr', {}, h('td', {}, l.p.name), h('td', { class: 'num' }, String(l.qty)), h('td', { class: 'num' }, money(l.p.price * l.qty))));
    });
    return h('table', { class: 'lines' },
      h('thead', {}, h('tr', {}, h('th', { text: 'Item' }), h('th', { class: 'num', text: 'Qty' }), h('th', { class: 'num', text: 'Amount' }))),
      body,
      h('tfoot', {}, h('tr', {}, h('th', { text: 'Total', colspan: '2' }), h('th', { class: 'num', text: money(cartTotal(lines)) }))));
  }

  // ------------------------------------------------------------------ chrome: header + log panel

  function renderCartCount() {
    var el = document.getElementById('cart-count');
    if (el) el.textContent = String(cart().reduce(function (s, l) { return s + l.qty; }, 0));
  }

  function header() {
    return h('header', { class: 'top' },
      h('a', { class: 'brand', href: '/' }, h('span', { class: 'dot' }), 'Tandem demo shop'),
      h('nav', {},
        h('a', { href: AD_CLICK, id: 'ad-click', title: 'Land with gclid, fbclid, ttclid and UTM parameters' }, 'Simulate an ad click'),
        h('a', { href: '/cart.html', class: 'cart-link' }, 'Cart ', h('span', { id: 'cart-count', class: 'pill', text: '0' }))));
  }

  function logPanel() {
    var list = h('ol', { class: 'log', id: 'log' });
    var count = h('span', { class: 'pill' }, '0');
    var panel = h('aside', { class: 'panel', id: 'log-panel' },
      h('div', { class: 'panel-head' },
        h('button', { class: 'linklike', onclick: function () { panel.classList.toggle('collapsed'); put(sessionStorage, 'shop:panel', panel.classList.contains('collapsed')); } }, 'Pixel & beacon log ', count),
        h('span', { class: 'legend' }, h('i', { class: 'b meta' }, 'meta'), h('i', { class: 'b google' }, 'google'), h('i', { class: 'b tiktok' }, 'tiktok'), h('i', { class: 'b endpoint' }, 'endpoint')),
        h('button', { class: 'ghost small', onclick: function () { window.shopLog.clear(); } }, 'Clear')),
      list);
    if (get(sessionStorage, 'shop:panel', false)) panel.classList.add('collapsed');
    function row(e) {
      var time = new Date(e.t).toLocaleTimeString();
      return h('li', { class: 'entry ' + e.kind },
        h('span', { class: 'time', text: time }),
        h('i', { class: 'b ' + e.platform, text: e.platform }),
        h('code', { class: 'fn', text: e.fn }),
        e.eventId ? h('code', { class: 'eid', title: 'event_id', text: e.eventId }) : null,
        e.ok === false ? h('span', { class: 'warn', text: 'sendBeacon refused' }) : null,
        e.clickIds ? h('span', { class: 'small muted', text: 'click ids: ' + e.clickIds }) : null,
        h('div', { class: 'args', text: e.args || '' }));
    }
    function render() {
      var entries = (window.shopLog && window.shopLog.entries) || [];
      list.textContent = '';
      for (var i = entries.length - 1; i >= 0; i--) list.appendChild(row(entries[i]));
      count.textContent = String(entries.length);
    }
    window.addEventListener('shoplog', render);
    render();
    return panel;
  }

  // Confirms what the endpoint actually stored (GET /events), for this browser's client id only.
  function pollEndpoint() {
    var seen = get(sessionStorage, 'shop:stored', {});
    function cid() { var m = document.cookie.match(/(?:^|;\s*)_tandem_cid=([^;]+)/); return m ? decodeURIComponent(m[1]) : null; }
    function tick() {
      var me = cid();
      if (!me || document.hidden) return;
      fetch('/events?local=1', { cache: 'no-store' }).then(function (r) { return r.ok ? r.json() : null; }).then(function (data) {
        if (!data || !data.events) return;
        var counts = {};
        data.events.forEach(function (ev) {
          if (!ev || ev.client_id !== me) return;
          counts[ev.event_id] = (counts[ev.event_id] || 0) + 1;
          if (seen[ev.event_id] >= counts[ev.event_id]) return;
          seen[ev.event_id] = counts[ev.event_id];
          window.shopLog.add({ kind: 'stored', platform: 'endpoint', fn: 'stored ' + ev.event_name + (counts[ev.event_id] > 1 ? ' (duplicate #' + counts[ev.event_id] + ')' : ''), args: 'click_ids: ' + (Object.keys(ev.click_ids || {}).join(', ') || '—') + ' · utm: ' + ((ev.utm && ev.utm.first && ev.utm.first.source) || '—'), eventId: ev.event_id });
        });
        put(sessionStorage, 'shop:stored', seen);
      }).catch(function () { /* server gone */ });
    }
    tick();
    setInterval(tick, 1500);
  }

  document.addEventListener('DOMContentLoaded', function () {
    var page = document.body.getAttribute('data-page') || 'index';
    var main = document.getElementById('main');
    document.body.insertBefore(header(), document.body.firstChild);
    document.body.appendChild(logPanel());
    renderCartCount();
    if (pages[page] && main) pages[page](main);
    pollEndpoint();
  });
})();

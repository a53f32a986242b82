// The demo shop, walked like a customer: ad click -> product -> cart -> checkout -> thank-you -> reload.
// Uses the shop's own recording pixels (www/shop/pixels.js), not the test stubs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setup, needsDist, waitFor, waitForEvents, waitForLoaded, settle, eventSchemaErrors } from './helpers.mjs';

let env;
before(async () => { env = await setup(); });
after(async () => { await env?.teardown(); });

const AD_CLICK = '/?gclid=TeSt-gclid&fbclid=IwAR-test&ttclid=E.C.P.test&utm_source=demo&utm_medium=cpc&utm_campaign=launch';

test('the demo shop sends each step once, with the order id as the Purchase event_id', needsDist, async () => {
  const { page, pageErrors } = await env.newPage({ stubs: false });
  await page.goto(env.url('/'));
  await page.click('#simulate-ad-click');
  await page.waitForURL(/gclid=TeSt-gclid/);
  await waitForLoaded(page);
  const cid = async () => (await page.context().cookies()).find((c) => c.name === '_tandem_cid')?.value;
  await page.click('a[data-product="sku-tee"]');
  await page.waitForURL(/product\.html/);
  await waitForLoaded(page);
  await page.fill('#qty', '2');
  await page.click('#add-to-cart');
  await page.goto(env.url('/cart.html'));
  await page.click('#checkout');
  await page.waitForURL(/checkout\.html/);
  await waitForLoaded(page);
  await page.check('input[value="card"]');
  await page.click('#place-order');
  await page.waitForURL(/thank-you\.html/);
  const orderId = await page.textContent('#order-id');
  const shownId = await page.textContent('#event-id');
  assert.match(orderId, /^ord-/);
  assert.equal(shownId, orderId, 'the Purchase event_id is the order id');

  const me = await waitFor(cid, { message: 'the _tandem_cid cookie' });
  const mine = (e) => e.client_id === me;
  const [purchase] = await waitForEvents(env.server, (e) => mine(e) && e.event_name === 'Purchase');
  assert.equal(purchase.event_id, orderId);
  assert.equal(purchase.custom_data.order_id, orderId);
  assert.equal(purchase.custom_data.value, 59.8);
  assert.equal(purchase.click_ids?.gclid?.value, 'TeSt-gclid');
  assert.equal(purchase.click_ids?.ttclid?.value, 'E.C.P.test');
  assert.equal(purchase.utm?.first?.campaign, 'launch');
  for (const name of ['ViewContent', 'AddToCart', 'InitiateCheckout', 'AddPaymentInfo']) {
    await waitForEvents(env.server, (e) => mine(e) && e.event_name === name, { message: name });
  }

  // Reloading the thank-you page must not send the Purchase again.
  await page.reload();
  await waitForLoaded(page);
  await page.click('#resend'); // and neither does an explicit second try: the tag dedups order ids
  await settle(800);
  const all = env.server.events.filter(mine);
  assert.equal(all.filter((e) => e.event_name === 'Purchase').length, 1, 'one Purchase');
  for (const e of all) assert.deepEqual(eventSchemaErrors(e), [], `${e.event_name} is schema-valid`);
  for (const name of ['ViewContent', 'AddToCart', 'InitiateCheckout', 'AddPaymentInfo']) {
    assert.equal(all.filter((e) => e.event_name === name).length, 1, `one ${name}`);
  }

  // The log panel shows the Purchase on every platform and the endpoint.
  const log = await page.evaluate(() => JSON.parse(sessionStorage.getItem('shop:log') || '[]'));
  for (const platform of ['meta', 'google', 'tiktok', 'endpoint']) {
    assert.ok(log.some((e) => e.platform === platform && e.eventId === orderId), `log shows ${platform} with ${orderId}`);
  }
  assert.ok(await page.locator('#log-panel .entry').count() > 5, 'the panel lists entries');
  assert.deepEqual(pageErrors, []);
});


// The shop's snippet compiles the wasm itself (tandem.compiled): the loader must take that module,
// not download the file a second time.
test("the snippet's compiled wasm is the one the loader instantiates: one download per page", needsDist, async () => {
  const { page } = await env.newPage({ stubs: false });
  const wasmRequests = [];
  page.on('request', (request) => {
    if (new URL(request.url()).pathname.endsWith('/tandem_bg.wasm')) wasmRequests.push(request.url());
  });
  await page.goto(env.url('/'));
  await waitForLoaded(page);
  await settle();
  assert.equal(wasmRequests.length, 1, `wasm requests: ${wasmRequests.join(', ')}`);
});

// Golden vectors for tandem('identify', …), from the oracle: Meta's own Business SDK for Node
// (facebook-nodejs-business-sdk, ServerSideUtils.normalizeAndHash), plus Google's and TikTok's
// documented rules written independently here in JS and hashed with node's crypto.
//
//   node tests/oracle/meta_oracle.mjs           prints every row (field, input, hashes)
//   node tests/oracle/meta_oracle.mjs --write   rewrites tests/oracle/vectors.json
//
// src/core/identity.rs asserts that the Rust normalisation gives every hash in vectors.json
// (cargo test), and tests/e2e/consent_oracle.test.mjs asserts that the SDK still gives what
// vectors.json says: if either side drifts, a test fails.
//
// Row fields: field (identify's name), input (what the site passes), sdk_input (what the SDK is
// called with: the same unless Tandem documents a convenience, e.g. YYYY-MM-DD dates), meta (the
// SDK's hash, or null when the SDK refuses: throws or returns null), google, tiktok (null when that
// platform does not take the field or the value), tandem_refuses (a reason, for inputs the SDK
// would hash although Meta's documented rule forbids them).
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const require = createRequire(import.meta.url);
const { ServerSideUtils } = require('facebook-nodejs-business-sdk');

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const VECTORS = path.join(HERE, 'vectors.json');

/** identify field → the SDK's field key. */
export const META_KEY = {
  email: 'em', phone: 'ph', firstName: 'fn', lastName: 'ln', city: 'ct', state: 'st', zip: 'zp',
  country: 'country', gender: 'ge', dateOfBirth: 'db', externalId: 'external_id',
};

const sha = (s) => createHash('sha256').update(s, 'utf8').digest('hex');
const HEX64 = /^[a-f0-9]{64}$/;

/** The SDK's answer: a hash, or null when it throws or returns null. */
export function oracle(field, input) {
  try {
    return ServerSideUtils.normalizeAndHash(input, META_KEY[field]) ?? null;
  } catch (e) {
    return null;
  }
}

// Google (support.google.com/google-ads/answer/13258081, developers.google.com/analytics/devguides/
// collection/ga4/uid-data): trim, lowercase; gmail.com / googlemail.com lose the dots of the local
// part; phone in E.164 with '+'. Names: trim + lowercase. Only email, phone and names are hashed.
// TikTok (ttq.identify / Events API user): email trim + lowercase, phone E.164 with '+',
// external_id as given (trimmed). Both only for values Meta's rule accepts (Tandem validates once).
function e164(input) {
  let digits = input.replace(/[^0-9]/g, '');
  if (digits.startsWith('00')) digits = digits.slice(2);
  return digits.length >= 7 && digits.length <= 15 && digits[0] !== '0' ? '+' + digits : null;
}
function google(field, input, metaOk) {
  if (!metaOk) return null;
  const t = input.trim().toLowerCase();
  if (HEX64.test(t)) return ['email', 'phone', 'firstName', 'lastName'].includes(field) ? t : null;
  if (field === 'email') {
    const [local, domain] = t.split('@');
    return sha(domain === 'gmail.com' || domain === 'googlemail.com' ? local.replace(/\./g, '') + '@' + domain : t);
  }
  if (field === 'phone') { const p = e164(t); return p && sha(p); }
  if (field === 'firstName' || field === 'lastName') return sha(t);
  return null;
}
function tiktok(field, input, metaOk) {
  if (!metaOk) return null;
  const t = input.trim().toLowerCase();
  if (HEX64.test(t)) return ['email', 'phone', 'externalId'].includes(field) ? t : null;
  if (field === 'email') return sha(t);
  if (field === 'phone') { const p = e164(t); return p && sha(p); }
  if (field === 'externalId') return sha(input.trim());
  return null;
}

const H = sha('already@hashed.example');
/** [field, input, options]: options.sdk_input for Tandem conveniences, options.tandem_refuses. */
export const CASES = [
  ['email', 'john.doe@example.com'], ['email', '  John.Doe@Example.COM  '], ['email', 'J.O.H.N@gmail.com'],
  ['email', 'jane.doe+shop@GoogleMail.com'], ['email', "o'brien_x-y{z}@mail.example.co.uk"], ['email', 'user@sub-domain.example.io'],
  ['email', 'a@b.cd'], ['email', 'no-at-sign.example.com'], ['email', 'two@@example.com'], ['email', 'trailing.@example.com'],
  ['email', '.leading@example.com'], ['email', 'dou..ble@example.com'], ['email', 'user@example'], ['email', 'user@-example.com'],
  ['email', 'user@example.c'], ['email', 'user@exa_mple.com'], ['email', 'üser@example.com'], ['email', ''], ['email', '   '],
  ['email', H], ['email', H.toUpperCase()], ['email', '\u00a0x@example.com\ufeff'], ['email', 'a`b@example.com'], ['email', '`ab@example.com'],
  ['email', 'user@ex--ample.com'], ['email', 'user@example.co-m'], ['email', 'user@example.c-'], ['email', 'x@a.-b.com'],
  ['phone', '+1 (650) 555-1212'], ['phone', '16505551212'], ['phone', '001-650-555-1212'], ['phone', '+44 20 7946 0958'],
  ['phone', '0044 20 7946 0958'], ['phone', '07700 900123'], ['phone', '+33 6 12 34 56 78'], ['phone', '555'], ['phone', '+1 650'],
  ['phone', '12345678901234567'], ['phone', '+49 (0) 30 1234567'], ['phone', '650-555-1212 ext 5'], ['phone', H],
  ['phone', '+1.650.555.1212', { sdk_input: '+1 650 555 1212' }], ['phone', '650/555/1212', { sdk_input: '650 555 1212' }],
  ['phone', '+1\t650 555 1212', { tandem_refuses: 'a tab is not a separator Meta documents; the SDK would hash it' }],
  ['phone', '1234567'], ['phone', '000123456789'],
  ['firstName', 'John'], ['firstName', '  MARÍA José '], ['firstName', 'Σίσυφος'], ['firstName', "O'Neil-Smith"], ['firstName', ''],
  ['lastName', 'Doe'], ['lastName', 'van der Berg'], ['lastName', 'İnan'], ['lastName', H],
  ['city', 'Menlo Park'], ['city', 'San Francisco (SF)'], ['city', 'Saint-Étienne'], ['city', 'New York 10001'], ['city', '12345', { tandem_refuses: 'nothing is left after normalisation; the SDK would hash the empty string' }],
  ['state', 'CA'], ['state', 'New South Wales'], ['state', ' n.y. '],
  ['zip', '94025'], ['zip', '94025-1234'], ['zip', ' SW1A 1AA '], ['zip', '1'], ['zip', 'A'], ['zip', '-123'],
  ['country', 'US'], ['country', ' gb '], ['country', 'UK'], ['country', 'usa'], ['country', 'United States'], ['country', 'de'],
  ['gender', 'f'], ['gender', 'Female'], ['gender', 'M'], ['gender', ' male '], ['gender', 'x'], ['gender', 'non-binary'],
  ['dateOfBirth', '19910526'], ['dateOfBirth', '1991-05-26', { sdk_input: '19910526' }], ['dateOfBirth', '1991/05/26', { sdk_input: '19910526' }],
  ['dateOfBirth', '26/05/1991', { tandem_refuses: 'not YYYYMMDD (Meta documents YYYYMMDD); the SDK would hash it as written' }],
  ['dateOfBirth', '19911326', { tandem_refuses: 'month 13; the SDK would hash it as written' }],
  ['externalId', 'U-1001'], ['externalId', '  Cust_42 '], ['externalId', '12345'], ['externalId', H],
];

export function buildRows() {
  return CASES.map(([field, input, opts = {}]) => {
    const sdkInput = opts.sdk_input ?? input;
    const refuses = opts.tandem_refuses ?? null;
    const meta = refuses ? null : oracle(field, sdkInput);
    const row = { field, input };
    if (opts.sdk_input !== undefined) row.sdk_input = sdkInput;
    row.meta = meta;
    row.google = google(field, input, meta !== null);
    row.tiktok = tiktok(field, input, meta !== null);
    if (refuses) { row.tandem_refuses = refuses; row.sdk_would_give = oracle(field, sdkInput); }
    return row;
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const rows = buildRows();
  if (process.argv.includes('--write')) {
    const sdk = require('facebook-nodejs-business-sdk/package.json').version;
    writeFileSync(VECTORS, JSON.stringify({ sdk: 'facebook-nodejs-business-sdk@' + sdk, rows }, null, 1) + '\n');
    console.log(`wrote ${rows.length} rows to ${path.relative(process.cwd(), VECTORS)}`);
  } else {
    for (const r of rows) console.log(`${r.field}\t${JSON.stringify(r.input)}\tmeta=${r.meta}\tgoogle=${r.google}\ttiktok=${r.tiktok}`);
  }
}

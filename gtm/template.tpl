___INFO___

{
  "type": "TAG",
  "id": "cvt_temp_public_id",
  "version": 1,
  "securityGroups": [],
  "displayName": "Tandem",
  "categories": [
    "ADVERTISING",
    "ANALYTICS",
    "CONVERSIONS"
  ],
  "brand": {
    "id": "brand_dummy",
    "displayName": "Tandem"
  },
  "description": "Tandem conversion tag: one event, one event_id, to the Meta, Google and TikTok pixels and your first-party endpoint. One tag type; its Action picks the call: Initialise (loads tandem.js), Track event, Page view, Consent, Identify.",
  "containerContexts": [
    "WEB"
  ]
}


___TEMPLATE_PARAMETERS___

[
  {
    "type": "SELECT",
    "name": "action",
    "displayName": "Action",
    "macrosInSelect": false,
    "simpleValueType": true,
    "defaultValue": "init",
    "selectItems": [
      {
        "value": "init",
        "displayValue": "Initialise: load tandem.js and tandem('init', config)"
      },
      {
        "value": "track",
        "displayValue": "Track event: tandem('track', name, params, options)"
      },
      {
        "value": "page",
        "displayValue": "Page view (single-page app route change): tandem('page')"
      },
      {
        "value": "consent",
        "displayValue": "Consent: tandem('consent', 'default' | 'update', values)"
      },
      {
        "value": "identify",
        "displayValue": "Identify: tandem('identify', fields)"
      }
    ],
    "help": "One Initialise tag per page (fire it on Initialization - All Pages). The other actions may fire before or after it: their calls are queued until tandem.js has loaded, then replayed in order."
  },
  {
    "type": "GROUP",
    "name": "initGroup",
    "displayName": "Initialise",
    "groupStyle": "NO_ZIPPY",
    "enablingConditions": [
      {
        "paramName": "action",
        "paramValue": "init",
        "type": "EQUALS"
      }
    ],
    "subParams": [
      {
        "type": "LABEL",
        "name": "initLabel",
        "displayName": "Succeeds when tandem.js has loaded; fails when it cannot be loaded. A second Initialise tag on the same page injects nothing more and its configuration is ignored."
      },
      {
        "type": "TEXT",
        "name": "scriptUrl",
        "displayName": "Script URL (tandem.js)",
        "simpleValueType": true,
        "defaultValue": "https://www.example.com/tandem/tandem.js",
        "help": "Where your site serves dist/tandem.js (self-hosted, first party). Replace www.example.com with your own host here AND in the template's \"Injects scripts\" permission (Templates > Tandem > Permissions), which only allows https://www.example.com/tandem/* as shipped.",
        "valueValidators": [
          {
            "type": "NON_EMPTY"
          }
        ]
      },
      {
        "type": "TEXT",
        "name": "wasmUrl",
        "displayName": "WebAssembly URL (optional)",
        "simpleValueType": true,
        "help": "Leave empty to fetch tandem_bg.wasm from beside tandem.js. Otherwise it is set as tandem.wasmUrl before the loader runs. Another origin must send CORS headers."
      },
      {
        "type": "TEXT",
        "name": "endpoint",
        "displayName": "First-party endpoint",
        "simpleValueType": true,
        "defaultValue": "/collect",
        "help": "Relative to the page or absolute; https on an https page."
      },
      {
        "type": "GROUP",
        "name": "metaGroup",
        "displayName": "Meta",
        "groupStyle": "ZIPPY_OPEN",
        "subParams": [
          {
            "type": "TEXT",
            "name": "metaPixelId",
            "displayName": "Pixel id",
            "simpleValueType": true,
            "help": "Several pixels: separate their ids with commas. Empty: no Meta."
          },
          {
            "type": "CHECKBOX",
            "name": "metaLoad",
            "checkboxText": "Tandem loads Meta's base code (fbevents.js); otherwise it calls the page's own fbq",
            "simpleValueType": true,
            "defaultValue": false
          }
        ]
      },
      {
        "type": "GROUP",
        "name": "googleGroup",
        "displayName": "Google",
        "groupStyle": "ZIPPY_OPEN",
        "subParams": [
          {
            "type": "TEXT",
            "name": "googleTagId",
            "displayName": "Google tag id (G-...)",
            "simpleValueType": true,
            "help": "Empty (and no Ads id): no Google."
          },
          {
            "type": "TEXT",
            "name": "googleAdsId",
            "displayName": "Google Ads id (AW-...)",
            "simpleValueType": true
          },
          {
            "type": "SIMPLE_TABLE",
            "name": "googleAdsLabels",
            "displayName": "Google Ads conversion labels",
            "simpleTableColumns": [
              {
                "defaultValue": "",
                "displayName": "Tandem event (e.g. Purchase)",
                "name": "event",
                "type": "TEXT"
              },
              {
                "defaultValue": "",
                "displayName": "Conversion label",
                "name": "label",
                "type": "TEXT"
              }
            ],
            "newRowButtonText": "Add label",
            "enablingConditions": [
              {
                "paramName": "googleAdsId",
                "paramValue": "",
                "type": "PRESENT"
              }
            ]
          },
          {
            "type": "CHECKBOX",
            "name": "googleLoad",
            "checkboxText": "Tandem loads gtag.js; otherwise it calls the page's own gtag",
            "simpleValueType": true,
            "defaultValue": false
          },
          {
            "type": "CHECKBOX",
            "name": "googleSendPageView",
            "checkboxText": "Tandem sends page_view even though gtag is the site's own (off: only when Tandem loads gtag)",
            "simpleValueType": true,
            "defaultValue": false
          }
        ]
      },
      {
        "type": "GROUP",
        "name": "tiktokGroup",
        "displayName": "TikTok",
        "groupStyle": "ZIPPY_OPEN",
        "subParams": [
          {
            "type": "TEXT",
            "name": "tiktokPixelId",
            "displayName": "Pixel id",
            "simpleValueType": true,
            "help": "Empty: no TikTok."
          },
          {
            "type": "CHECKBOX",
            "name": "tiktokLoad",
            "checkboxText": "Tandem loads TikTok's base code (events.js); otherwise it calls the page's own ttq",
            "simpleValueType": true,
            "defaultValue": false
          }
        ]
      },
      {
        "type": "GROUP",
        "name": "optionsGroup",
        "displayName": "Options",
        "groupStyle": "ZIPPY_CLOSED",
        "subParams": [
          {
            "type": "CHECKBOX",
            "name": "autoPageView",
            "checkboxText": "Send a PageView on init (autoPageView)",
            "simpleValueType": true,
            "defaultValue": true
          },
          {
            "type": "CHECKBOX",
            "name": "debug",
            "checkboxText": "Debug: Tandem logs each destination's call and warnings to the console",
            "simpleValueType": true,
            "defaultValue": false
          },
          {
            "type": "SELECT",
            "name": "consentMode",
            "displayName": "Consent mode (consentMode)",
            "macrosInSelect": false,
            "simpleValueType": true,
            "defaultValue": "advanced",
            "selectItems": [
              {
                "value": "advanced",
                "displayValue": "advanced: counted while denied, without identifiers"
              },
              {
                "value": "basic",
                "displayValue": "basic: nothing sent unless ad_storage and ad_user_data are granted"
              }
            ]
          },
          {
            "type": "SELECT",
            "name": "gpc",
            "displayName": "Global Privacy Control (gpc)",
            "macrosInSelect": false,
            "simpleValueType": true,
            "defaultValue": "honor",
            "selectItems": [
              {
                "value": "honor",
                "displayValue": "honor: GPC denies ad_user_data and ad_personalization"
              },
              {
                "value": "ignore",
                "displayValue": "ignore: the site handles GPC itself"
              }
            ]
          },
          {
            "type": "TEXT",
            "name": "cookieDomain",
            "displayName": "Cookie domain (optional)",
            "simpleValueType": true,
            "help": "Default: the registrable domain."
          },
          {
            "type": "TEXT",
            "name": "attributionWindowDays",
            "displayName": "Attribution window in days (optional)",
            "simpleValueType": true,
            "help": "Default 90; 1 to 730."
          }
        ]
      }
    ]
  },
  {
    "type": "GROUP",
    "name": "trackGroup",
    "displayName": "Track event",
    "groupStyle": "NO_ZIPPY",
    "enablingConditions": [
      {
        "paramName": "action",
        "paramValue": "track",
        "type": "EQUALS"
      }
    ],
    "subParams": [
      {
        "type": "LABEL",
        "name": "trackLabel",
        "displayName": "Succeeds once the call is handed to Tandem (queued until tandem.js loads, or sent at once); fails only if tandem.js already failed to load on this page."
      },
      {
        "type": "SELECT",
        "name": "eventName",
        "displayName": "Event name",
        "macrosInSelect": true,
        "simpleValueType": true,
        "defaultValue": "Purchase",
        "selectItems": [
          {
            "value": "PageView",
            "displayValue": "PageView"
          },
          {
            "value": "ViewContent",
            "displayValue": "ViewContent"
          },
          {
            "value": "Search",
            "displayValue": "Search"
          },
          {
            "value": "AddToCart",
            "displayValue": "AddToCart"
          },
          {
            "value": "AddToWishlist",
            "displayValue": "AddToWishlist"
          },
          {
            "value": "InitiateCheckout",
            "displayValue": "InitiateCheckout"
          },
          {
            "value": "AddPaymentInfo",
            "displayValue": "AddPaymentInfo"
          },
          {
            "value": "Purchase",
            "displayValue": "Purchase"
          },
          {
            "value": "Lead",
            "displayValue": "Lead"
          },
          {
            "value": "CompleteRegistration",
            "displayValue": "CompleteRegistration"
          },
          {
            "value": "Contact",
            "displayValue": "Contact"
          },
          {
            "value": "CustomizeProduct",
            "displayValue": "CustomizeProduct"
          },
          {
            "value": "Donate",
            "displayValue": "Donate"
          },
          {
            "value": "FindLocation",
            "displayValue": "FindLocation"
          },
          {
            "value": "Schedule",
            "displayValue": "Schedule"
          },
          {
            "value": "StartTrial",
            "displayValue": "StartTrial"
          },
          {
            "value": "SubmitApplication",
            "displayValue": "SubmitApplication"
          },
          {
            "value": "Subscribe",
            "displayValue": "Subscribe"
          },
          {
            "value": "__custom__",
            "displayValue": "Custom event..."
          }
        ],
        "help": "Meta's standard event names; Tandem maps each to GA4's and TikTok's. A custom name must follow GA4's naming rules."
      },
      {
        "type": "TEXT",
        "name": "customEventName",
        "displayName": "Custom event name",
        "simpleValueType": true,
        "enablingConditions": [
          {
            "paramName": "eventName",
            "paramValue": "__custom__",
            "type": "EQUALS"
          }
        ],
        "valueValidators": [
          {
            "type": "NON_EMPTY"
          }
        ]
      },
      {
        "type": "SIMPLE_TABLE",
        "name": "params",
        "displayName": "Parameters",
        "simpleTableColumns": [
          {
            "defaultValue": "",
            "displayName": "Name (value, currency, order_id, content_ids, ...)",
            "name": "name",
            "type": "TEXT"
          },
          {
            "defaultValue": "",
            "displayName": "Value",
            "name": "value",
            "type": "TEXT"
          }
        ],
        "newRowButtonText": "Add parameter",
        "help": "value, num_items and predicted_ltv are converted to numbers ('49.90' becomes 49.9); content_ids given as text 'a, b' becomes a list. A row whose value is empty on the page is left out. Other names are custom parameters."
      },
      {
        "type": "TEXT",
        "name": "paramsObject",
        "displayName": "Parameters from a variable (optional)",
        "simpleValueType": true,
        "help": "A variable that returns an object of parameters, e.g. {contents: [...]}. Rows above override its keys."
      },
      {
        "type": "TEXT",
        "name": "eventId",
        "displayName": "Event id (optional)",
        "simpleValueType": true,
        "help": "options.eventId: your own id for this event, e.g. the order id your backend also sends server-side. 1 to 64 of A-Z a-z 0-9 _ . : -"
      }
    ]
  },
  {
    "type": "GROUP",
    "name": "pageGroup",
    "displayName": "Page view",
    "groupStyle": "NO_ZIPPY",
    "enablingConditions": [
      {
        "paramName": "action",
        "paramValue": "page",
        "type": "EQUALS"
      }
    ],
    "subParams": [
      {
        "type": "LABEL",
        "name": "pageLabel",
        "displayName": "tandem('page'): a PageView for the page's current URL, e.g. on a History Change trigger. Initialise already sends the first one."
      }
    ]
  },
  {
    "type": "GROUP",
    "name": "consentGroup",
    "displayName": "Consent",
    "groupStyle": "NO_ZIPPY",
    "enablingConditions": [
      {
        "paramName": "action",
        "paramValue": "consent",
        "type": "EQUALS"
      }
    ],
    "subParams": [
      {
        "type": "SELECT",
        "name": "consentKind",
        "displayName": "Kind",
        "macrosInSelect": false,
        "simpleValueType": true,
        "defaultValue": "default",
        "selectItems": [
          {
            "value": "default",
            "displayValue": "default (fire on Consent Initialization - All Pages)"
          },
          {
            "value": "update",
            "displayValue": "update (fire on your consent banner's event)"
          }
        ]
      },
      {
        "type": "SELECT",
        "name": "ad_storage",
        "displayName": "ad_storage",
        "macrosInSelect": true,
        "simpleValueType": true,
        "notSetText": "Not set (left as it is)",
        "selectItems": [
          {
            "value": "granted",
            "displayValue": "granted"
          },
          {
            "value": "denied",
            "displayValue": "denied"
          }
        ]
      },
      {
        "type": "SELECT",
        "name": "analytics_storage",
        "displayName": "analytics_storage",
        "macrosInSelect": true,
        "simpleValueType": true,
        "notSetText": "Not set (left as it is)",
        "selectItems": [
          {
            "value": "granted",
            "displayValue": "granted"
          },
          {
            "value": "denied",
            "displayValue": "denied"
          }
        ]
      },
      {
        "type": "SELECT",
        "name": "ad_user_data",
        "displayName": "ad_user_data",
        "macrosInSelect": true,
        "simpleValueType": true,
        "notSetText": "Not set (left as it is)",
        "selectItems": [
          {
            "value": "granted",
            "displayValue": "granted"
          },
          {
            "value": "denied",
            "displayValue": "denied"
          }
        ]
      },
      {
        "type": "SELECT",
        "name": "ad_personalization",
        "displayName": "ad_personalization",
        "macrosInSelect": true,
        "simpleValueType": true,
        "notSetText": "Not set (left as it is)",
        "selectItems": [
          {
            "value": "granted",
            "displayValue": "granted"
          },
          {
            "value": "denied",
            "displayValue": "denied"
          }
        ]
      },
      {
        "type": "TEXT",
        "name": "waitForUpdate",
        "displayName": "wait_for_update (ms, optional)",
        "simpleValueType": true,
        "enablingConditions": [
          {
            "paramName": "consentKind",
            "paramValue": "default",
            "type": "EQUALS"
          }
        ],
        "help": "Holds events in memory until an update or this many milliseconds (at most 30000)."
      },
      {
        "type": "TEXT",
        "name": "consentRegion",
        "displayName": "Region (optional)",
        "simpleValueType": true,
        "enablingConditions": [
          {
            "paramName": "consentKind",
            "paramValue": "default",
            "type": "EQUALS"
          }
        ],
        "help": "ISO 3166-2 codes separated by commas, e.g. 'AT, DE'. Tandem cannot tell the visitor's region: a purpose a regional default denies stays denied until an update."
      }
    ]
  },
  {
    "type": "GROUP",
    "name": "identifyGroup",
    "displayName": "Identify",
    "groupStyle": "NO_ZIPPY",
    "enablingConditions": [
      {
        "paramName": "action",
        "paramValue": "identify",
        "type": "EQUALS"
      }
    ],
    "subParams": [
      {
        "type": "LABEL",
        "name": "identifyLabel",
        "displayName": "Hashed in the browser; raw values never leave it. A field that is empty on the page is left out (an earlier value stays); a variable that returns null removes it."
      },
      {
        "type": "CHECKBOX",
        "name": "forgetIdentity",
        "checkboxText": "Forget the visitor's identity: tandem('identify', null)",
        "simpleValueType": true,
        "defaultValue": false
      },
      {
        "type": "TEXT",
        "name": "email",
        "displayName": "email",
        "simpleValueType": true,
        "enablingConditions": [
          {
            "paramName": "forgetIdentity",
            "paramValue": false,
            "type": "EQUALS"
          }
        ]
      },
      {
        "type": "TEXT",
        "name": "phone",
        "displayName": "phone",
        "simpleValueType": true,
        "enablingConditions": [
          {
            "paramName": "forgetIdentity",
            "paramValue": false,
            "type": "EQUALS"
          }
        ],
        "help": "With the country code: +1 650 555 1212, 0044 20 7946 0958 or 16505551212."
      },
      {
        "type": "TEXT",
        "name": "firstName",
        "displayName": "firstName",
        "simpleValueType": true,
        "enablingConditions": [
          {
            "paramName": "forgetIdentity",
            "paramValue": false,
            "type": "EQUALS"
          }
        ]
      },
      {
        "type": "TEXT",
        "name": "lastName",
        "displayName": "lastName",
        "simpleValueType": true,
        "enablingConditions": [
          {
            "paramName": "forgetIdentity",
            "paramValue": false,
            "type": "EQUALS"
          }
        ]
      },
      {
        "type": "TEXT",
        "name": "city",
        "displayName": "city",
        "simpleValueType": true,
        "enablingConditions": [
          {
            "paramName": "forgetIdentity",
            "paramValue": false,
            "type": "EQUALS"
          }
        ]
      },
      {
        "type": "TEXT",
        "name": "state",
        "displayName": "state",
        "simpleValueType": true,
        "enablingConditions": [
          {
            "paramName": "forgetIdentity",
            "paramValue": false,
            "type": "EQUALS"
          }
        ]
      },
      {
        "type": "TEXT",
        "name": "zip",
        "displayName": "zip",
        "simpleValueType": true,
        "enablingConditions": [
          {
            "paramName": "forgetIdentity",
            "paramValue": false,
            "type": "EQUALS"
          }
        ]
      },
      {
        "type": "TEXT",
        "name": "country",
        "displayName": "country",
        "simpleValueType": true,
        "enablingConditions": [
          {
            "paramName": "forgetIdentity",
            "paramValue": false,
            "type": "EQUALS"
          }
        ]
      },
      {
        "type": "TEXT",
        "name": "gender",
        "displayName": "gender",
        "simpleValueType": true,
        "enablingConditions": [
          {
            "paramName": "forgetIdentity",
            "paramValue": false,
            "type": "EQUALS"
          }
        ]
      },
      {
        "type": "TEXT",
        "name": "dateOfBirth",
        "displayName": "dateOfBirth",
        "simpleValueType": true,
        "enablingConditions": [
          {
            "paramName": "forgetIdentity",
            "paramValue": false,
            "type": "EQUALS"
          }
        ],
        "help": "YYYY-MM-DD or YYYYMMDD."
      },
      {
        "type": "TEXT",
        "name": "externalId",
        "displayName": "externalId",
        "simpleValueType": true,
        "enablingConditions": [
          {
            "paramName": "forgetIdentity",
            "paramValue": false,
            "type": "EQUALS"
          }
        ]
      }
    ]
  }
]


___SANDBOXED_JS_FOR_WEB_TEMPLATE___

// Tandem for Google Tag Manager: one tag type; its "Action" picks the Tandem call it makes.
//
// Every action talks to the same window.tandem the README's snippet installs: a function that
// pushes its `arguments` onto tandem.q, which the loader (www/loader.js) replays in order once
// tandem.js arrives, before it swaps in the live function. So tags may fire in any order: a
// Consent or Track tag that fires before the Initialise tag is queued, and replayed.
//
// Success and failure (GTM's tag sequencing relies on them): each firing calls exactly one of
// data.gtmOnSuccess / data.gtmOnFailure, once.
// - Initialise succeeds when tandem.js has loaded, and fails when it could not be loaded (or the
//   template may not inject its URL). Its init call is queued before the script is injected, so a
//   tag sequenced after it runs with Tandem loaded and configured.
// - Track, Page view, Consent and Identify succeed as soon as the call is handed to Tandem: queued
//   behind the stub (the loader replays it) or taken by the live tag. They fail only when nothing
//   can ever run the call: window.tandem is something else, or tandem.js already failed to load on
//   this page. Whether Tandem accepts the call's content is Tandem's to decide and report
//   (onError, console.error), as for any other call.

const callInWindow = require('callInWindow');
const copyFromWindow = require('copyFromWindow');
const createArgumentsQueue = require('createArgumentsQueue');
const getType = require('getType');
const injectScript = require('injectScript');
const logToConsole = require('logToConsole');
const makeNumber = require('makeNumber');
const makeString = require('makeString');
const makeTableMap = require('makeTableMap');
const Object = require('Object');
const queryPermission = require('queryPermission');
const setInWindow = require('setInWindow');
const templateStorage = require('templateStorage');

const LOG_PREFIX = '[Tandem GTM]';
// One script element for every Initialise tag on the page, whatever their number or URLs: the
// loader is idempotent, but one download is enough.
const LOADER_CACHE_TOKEN = 'tandem-loader';
// Shared by every tag made from this template, for the page's lifetime: 'loaded' or 'failed'.
const LOADER_STATE = 'loaderState';
const CUSTOM_EVENT = '__custom__';
// The README's canonical numeric parameters; GTM text fields give them as strings.
const NUMERIC_PARAMS = ['value', 'num_items', 'predicted_ltv'];
const CONSENT_PURPOSES = ['ad_storage', 'analytics_storage', 'ad_user_data', 'ad_personalization'];
const IDENTITY_FIELDS = ['email', 'phone', 'firstName', 'lastName', 'city', 'state', 'zip', 'country',
  'gender', 'dateOfBirth', 'externalId'];

// Only logs in GTM's preview and debug mode (the "logging" permission is set to debug only).
function log(message, value) {
  if (value === undefined) logToConsole(LOG_PREFIX + ' ' + message);
  else logToConsole(LOG_PREFIX + ' ' + message, value);
}

let signalled = false;
function succeed() {
  if (signalled) return;
  signalled = true;
  data.gtmOnSuccess();
}
function fail(reason) {
  if (signalled) return;
  signalled = true;
  log(reason);
  data.gtmOnFailure();
}

function isBlank(value) {
  return value === undefined || value === null || (getType(value) === 'string' && value.trim() === '');
}

function trimmed(value) {
  return getType(value) === 'string' ? value.trim() : value;
}

// 'a, b' (a text field) or ['a', 'b'] (a variable) as a list of non-empty strings.
function list(value) {
  if (isBlank(value)) return [];
  const items = getType(value) === 'array' ? value : makeString(value).split(',');
  return items.map(function (item) { return trimmed(makeString(item)); })
    .filter(function (item) { return item !== ''; });
}

// A number typed into a GTM text field arrives as a string ('49.90'). Anything that is not a
// finite number is logged and passed on unchanged, so Tandem's own validation reports it (onError,
// console.error) and applies its rule: the parameter dropped, a Purchase refused.
function toNumber(value, field) {
  const type = getType(value);
  if (type === 'number' && value - value === 0) return value;
  if (type === 'string' && value.trim() !== '') {
    const number = makeNumber(value.trim());
    if (getType(number) === 'number' && number - number === 0) return number;
  }
  log(field + ' is not a number; passed on as given, for Tandem to report:', value);
  return value;
}

// window.tandem as the README's snippet makes it (createArgumentsQueue is that snippet's sandboxed
// form). One that already exists is left alone: the page's own stub, another tag's, or the live
// function once the loader ran.
function tandemAvailable() {
  const existing = getType(copyFromWindow('tandem'));
  if (existing === 'function') return true;
  if (existing !== 'undefined') return false;
  createArgumentsQueue('tandem', 'tandem.q');
  return getType(copyFromWindow('tandem')) === 'function';
}

function tandemLive() {
  return copyFromWindow('tandem.loaded') === true;
}

// Calls whatever window.tandem is now, stub or live, with exactly the README's arguments (an extra
// `undefined` would reach Tandem as one more argument). Through callInWindow rather than the
// function createArgumentsQueue returns, which Google documents as the stub it created: once the
// loader has swapped in the live function, calls must reach that one.
function callTandem(args) {
  log('tandem(...)', args);
  if (args.length === 1) return callInWindow('tandem', args[0]);
  if (args.length === 2) return callInWindow('tandem', args[0], args[1]);
  if (args.length === 3) return callInWindow('tandem', args[0], args[1], args[2]);
  return callInWindow('tandem', args[0], args[1], args[2], args[3]);
}

function deliver(args) {
  if (!tandemAvailable()) return fail('window.tandem is already something that is not Tandem; nothing was sent');
  const result = callTandem(args);
  if (templateStorage.getItem(LOADER_STATE) === 'failed' && !tandemLive()) {
    return fail('tandem.js failed to load on this page, so nothing will run this call');
  }
  if ((args[0] === 'track' || args[0] === 'page') && result === null && tandemLive()) {
    log('Tandem refused this event; the [tandem] error in the console says why');
  }
  succeed();
}

function initConfig() {
  const config = {};
  if (!isBlank(data.endpoint)) config.endpoint = trimmed(data.endpoint);

  const metaPixels = list(data.metaPixelId);
  if (metaPixels.length) {
    config.meta = { pixelId: metaPixels.length === 1 ? metaPixels[0] : metaPixels };
    if (data.metaLoad === true) config.meta.load = true;
  }

  const googleTagId = trimmed(data.googleTagId);
  const googleAdsId = trimmed(data.googleAdsId);
  const labelRows = (data.googleAdsLabels || []).filter(function (row) { return !isBlank(row.event) && !isBlank(row.label); });
  const labels = makeTableMap(labelRows, 'event', 'label');
  if (labels && isBlank(googleAdsId)) log('Google Ads conversion labels need a Google Ads id; they were left out');
  if (!isBlank(googleTagId) || !isBlank(googleAdsId)) {
    const google = {};
    if (!isBlank(googleTagId)) google.tagId = googleTagId;
    if (!isBlank(googleAdsId)) google.ads = { id: googleAdsId, labels: labels || {} };
    if (data.googleLoad === true) google.load = true;
    if (data.googleSendPageView === true) google.sendPageView = true;
    config.google = google;
  }

  if (!isBlank(data.tiktokPixelId)) {
    config.tiktok = { pixelId: trimmed(data.tiktokPixelId) };
    if (data.tiktokLoad === true) config.tiktok.load = true;
  }

  if (!isBlank(data.cookieDomain)) config.cookieDomain = trimmed(data.cookieDomain);
  if (!isBlank(data.attributionWindowDays)) {
    config.attributionWindowDays = toNumber(data.attributionWindowDays, 'attributionWindowDays');
  }
  // A tag saved before the checkbox existed has no value: Tandem's default, true.
  config.autoPageView = data.autoPageView !== false;
  if (data.debug === true) config.debug = true;
  if (!isBlank(data.consentMode)) config.consentMode = data.consentMode;
  if (!isBlank(data.gpc)) config.gpc = data.gpc;
  return config;
}

function initialise() {
  const scriptUrl = trimmed(data.scriptUrl);
  if (isBlank(scriptUrl)) return fail('no Script URL: set it to where your site serves tandem.js');
  if (!queryPermission('inject_script', scriptUrl)) {
    return fail('this template may not inject ' + scriptUrl + ': add its URL to the "Injects scripts" permission');
  }
  if (!tandemAvailable()) return fail('window.tandem is already something that is not Tandem; Tandem was not started');
  // Read by the loader when it boots (README, "set tandem.wasmUrl on the stub").
  if (!isBlank(data.wasmUrl)) setInWindow('tandem.wasmUrl', trimmed(data.wasmUrl), true);
  // Queued before the script is injected, so the loader finds it in tandem.q; a second init (two
  // Initialise tags) is ignored by Tandem.
  callTandem(['init', initConfig()]);
  injectScript(scriptUrl, function () {
    templateStorage.setItem(LOADER_STATE, 'loaded');
    succeed();
  }, function () {
    templateStorage.setItem(LOADER_STATE, 'failed');
    fail('tandem.js could not be loaded from ' + scriptUrl);
  }, LOADER_CACHE_TOKEN);
}

function eventParams() {
  const params = {};
  const fromVariable = data.paramsObject;
  if (getType(fromVariable) === 'object') {
    Object.keys(fromVariable).forEach(function (key) { params[key] = fromVariable[key]; });
  } else if (!isBlank(fromVariable)) {
    log('"Parameters from a variable" must be an object; it was left out:', fromVariable);
  }
  (data.params || []).forEach(function (row) {
    const key = trimmed(row.name);
    if (isBlank(key) || getType(key) !== 'string') return log('a parameter row without a name was left out:', row);
    // A variable that is empty on this page leaves its parameter out rather than sending ''.
    if (row.value === undefined || (getType(row.value) === 'string' && row.value.trim() === '')) {
      return log('parameter ' + key + ' is empty on this page and was left out');
    }
    params[key] = row.value;
  });
  NUMERIC_PARAMS.forEach(function (key) {
    if (params[key] !== undefined && params[key] !== null) params[key] = toNumber(params[key], key);
  });
  // A text field's 'sku1, sku2' is the README's list of ids.
  if (getType(params.content_ids) === 'string') params.content_ids = list(params.content_ids);
  return params;
}

function trackEvent() {
  const name = data.eventName === CUSTOM_EVENT ? trimmed(data.customEventName) : data.eventName;
  const args = ['track', name, eventParams()];
  if (!isBlank(data.eventId)) args.push({ eventId: data.eventId });
  deliver(args);
}

function pageView() {
  deliver(['page']);
}

function setConsent() {
  const values = {};
  CONSENT_PURPOSES.forEach(function (purpose) {
    const value = data[purpose];
    if (isBlank(value)) return;
    if (value !== 'granted' && value !== 'denied') log(purpose + " should be 'granted' or 'denied'; passed on for Tandem to report:", value);
    values[purpose] = value;
  });
  if (data.consentKind === 'default') {
    if (!isBlank(data.waitForUpdate)) values.wait_for_update = toNumber(data.waitForUpdate, 'wait_for_update');
    const regions = list(data.consentRegion);
    if (regions.length) values.region = regions;
  }
  if (!Object.keys(values).length) {
    log('no consent purpose is set on this tag; nothing was sent');
    return succeed();
  }
  deliver(['consent', data.consentKind, values]);
}

function identifyVisitor() {
  if (data.forgetIdentity === true) return deliver(['identify', null]);
  const identity = {};
  IDENTITY_FIELDS.forEach(function (field) {
    const value = data[field];
    // Empty on this page: left out, so what an earlier call set stays. A variable that gives null
    // removes the field, as in the README.
    if (value === undefined || (getType(value) === 'string' && value.trim() === '')) return;
    identity[field] = value;
  });
  if (!Object.keys(identity).length) {
    log('no identity field has a value on this page; nothing was sent');
    return succeed();
  }
  deliver(['identify', identity]);
}

const ACTIONS = {
  init: initialise,
  track: trackEvent,
  page: pageView,
  consent: setConsent,
  identify: identifyVisitor,
};
const action = ACTIONS[data.action];
if (getType(action) === 'function') action();
else fail('unknown action: ' + data.action);


___WEB_PERMISSIONS___

[
  {
    "instance": {
      "key": {
        "publicId": "access_globals",
        "versionId": "1"
      },
      "param": [
        {
          "key": "keys",
          "value": {
            "type": 2,
            "listItem": [
              {
                "type": 3,
                "mapKey": [
                  {
                    "type": 1,
                    "string": "key"
                  },
                  {
                    "type": 1,
                    "string": "read"
                  },
                  {
                    "type": 1,
                    "string": "write"
                  },
                  {
                    "type": 1,
                    "string": "execute"
                  }
                ],
                "mapValue": [
                  {
                    "type": 1,
                    "string": "tandem"
                  },
                  {
                    "type": 8,
                    "boolean": true
                  },
                  {
                    "type": 8,
                    "boolean": true
                  },
                  {
                    "type": 8,
                    "boolean": true
                  }
                ]
              },
              {
                "type": 3,
                "mapKey": [
                  {
                    "type": 1,
                    "string": "key"
                  },
                  {
                    "type": 1,
                    "string": "read"
                  },
                  {
                    "type": 1,
                    "string": "write"
                  },
                  {
                    "type": 1,
                    "string": "execute"
                  }
                ],
                "mapValue": [
                  {
                    "type": 1,
                    "string": "tandem.q"
                  },
                  {
                    "type": 8,
                    "boolean": true
                  },
                  {
                    "type": 8,
                    "boolean": true
                  },
                  {
                    "type": 8,
                    "boolean": false
                  }
                ]
              },
              {
                "type": 3,
                "mapKey": [
                  {
                    "type": 1,
                    "string": "key"
                  },
                  {
                    "type": 1,
                    "string": "read"
                  },
                  {
                    "type": 1,
                    "string": "write"
                  },
                  {
                    "type": 1,
                    "string": "execute"
                  }
                ],
                "mapValue": [
                  {
                    "type": 1,
                    "string": "tandem.wasmUrl"
                  },
                  {
                    "type": 8,
                    "boolean": true
                  },
                  {
                    "type": 8,
                    "boolean": true
                  },
                  {
                    "type": 8,
                    "boolean": false
                  }
                ]
              },
              {
                "type": 3,
                "mapKey": [
                  {
                    "type": 1,
                    "string": "key"
                  },
                  {
                    "type": 1,
                    "string": "read"
                  },
                  {
                    "type": 1,
                    "string": "write"
                  },
                  {
                    "type": 1,
                    "string": "execute"
                  }
                ],
                "mapValue": [
                  {
                    "type": 1,
                    "string": "tandem.loaded"
                  },
                  {
                    "type": 8,
                    "boolean": true
                  },
                  {
                    "type": 8,
                    "boolean": false
                  },
                  {
                    "type": 8,
                    "boolean": false
                  }
                ]
              }
            ]
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "inject_script",
        "versionId": "1"
      },
      "param": [
        {
          "key": "urls",
          "value": {
            "type": 2,
            "listItem": [
              {
                "type": 1,
                "string": "https://www.example.com/tandem/*"
              }
            ]
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "logging",
        "versionId": "1"
      },
      "param": [
        {
          "key": "environments",
          "value": {
            "type": 1,
            "string": "debug"
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "access_template_storage",
        "versionId": "1"
      },
      "param": []
    },
    "isRequired": true
  }
]


___TESTS___

scenarios:
- name: Initialise queues tandem('init', config) and succeeds once tandem.js has loaded
  code: |-
    mock('injectScript', function (url, onSuccess, onFailure, cacheToken) {
      assertThat(url).isEqualTo(scriptUrl);
      assertThat(cacheToken).isEqualTo('tandem-loader');
      onSuccess();
    });
    runCode({
      action: 'init',
      scriptUrl: scriptUrl,
      endpoint: '/collect',
      metaPixelId: '123456789012345',
      googleTagId: 'G-XXXXXXX',
      googleAdsId: 'AW-123456789',
      googleAdsLabels: [{event: 'Purchase', label: 'AbC-dEfGh'}],
      tiktokPixelId: 'CXXXXXXXXXXXXXXXXXXX',
      autoPageView: true,
      consentMode: 'advanced',
      gpc: 'honor'
    });
    assertApi('callInWindow').wasCalledWith('tandem', 'init', {
      endpoint: '/collect',
      meta: {pixelId: '123456789012345'},
      google: {tagId: 'G-XXXXXXX', ads: {id: 'AW-123456789', labels: {Purchase: 'AbC-dEfGh'}}},
      tiktok: {pixelId: 'CXXXXXXXXXXXXXXXXXXX'},
      autoPageView: true,
      consentMode: 'advanced',
      gpc: 'honor'
    });
    assertApi('gtmOnSuccess').wasCalled();
    assertApi('gtmOnFailure').wasNotCalled();
- name: Initialise fails, and does not succeed, when tandem.js cannot be loaded
  code: |-
    mock('injectScript', function (url, onSuccess, onFailure) {
      onFailure();
    });
    runCode({action: 'init', scriptUrl: scriptUrl});
    assertApi('gtmOnFailure').wasCalled();
    assertApi('gtmOnSuccess').wasNotCalled();
- name: Initialise fails without injecting anything when the permission refuses the URL
  code: |-
    mock('queryPermission', false);
    runCode({action: 'init', scriptUrl: 'https://cdn.elsewhere.example/tandem.js'});
    assertApi('injectScript').wasNotCalled();
    assertApi('callInWindow').wasNotCalled();
    assertApi('gtmOnFailure').wasCalled();
    assertApi('gtmOnSuccess').wasNotCalled();
- name: Track converts numbers typed as text and passes the event id
  code: |-
    runCode({
      action: 'track',
      eventName: 'Purchase',
      params: [{name: 'value', value: '49.90'}, {name: 'currency', value: 'EUR'}, {name: 'order_id', value: '1001'}],
      eventId: 'order-1001'
    });
    assertApi('callInWindow').wasCalledWith('tandem', 'track', 'Purchase',
      {value: 49.9, currency: 'EUR', order_id: '1001'}, {eventId: 'order-1001'});
    assertApi('injectScript').wasNotCalled();
    assertApi('gtmOnSuccess').wasCalled();
    assertApi('gtmOnFailure').wasNotCalled();
- name: Track passes a value that is not a number on unchanged, for Tandem to report
  code: |-
    runCode({action: 'track', eventName: 'AddToCart', params: [{name: 'value', value: 'abc'}, {name: 'currency', value: 'EUR'}]});
    assertApi('callInWindow').wasCalledWith('tandem', 'track', 'AddToCart', {value: 'abc', currency: 'EUR'});
    assertApi('logToConsole').wasCalled();
    assertApi('gtmOnSuccess').wasCalled();
- name: Track sends a custom event name
  code: |-
    runCode({action: 'track', eventName: '__custom__', customEventName: 'newsletter_signup', params: []});
    assertApi('callInWindow').wasCalledWith('tandem', 'track', 'newsletter_signup', {});
    assertApi('gtmOnSuccess').wasCalled();
- name: Track fails when tandem.js already failed to load on the page
  code: |-
    mock('injectScript', function (url, onSuccess, onFailure) {
      onFailure();
    });
    runCode({action: 'init', scriptUrl: scriptUrl});
    runCode({action: 'track', eventName: 'Lead', params: []});
    assertApi('callInWindow').wasCalledWith('tandem', 'track', 'Lead', {});
    assertApi('gtmOnSuccess').wasNotCalled();
- name: Page view calls tandem('page')
  code: |-
    runCode({action: 'page'});
    assertApi('callInWindow').wasCalledWith('tandem', 'page');
    assertApi('gtmOnSuccess').wasCalled();
- name: Consent default sends the purposes set, wait_for_update as a number and the regions
  code: |-
    runCode({
      action: 'consent',
      consentKind: 'default',
      ad_storage: 'denied',
      analytics_storage: 'granted',
      ad_user_data: 'denied',
      waitForUpdate: '500',
      consentRegion: 'AT, DE'
    });
    assertApi('callInWindow').wasCalledWith('tandem', 'consent', 'default', {
      ad_storage: 'denied',
      analytics_storage: 'granted',
      ad_user_data: 'denied',
      wait_for_update: 500,
      region: ['AT', 'DE']
    });
    assertApi('gtmOnSuccess').wasCalled();
- name: Consent update sends no wait_for_update
  code: |-
    runCode({action: 'consent', consentKind: 'update', ad_storage: 'granted', ad_user_data: 'granted', waitForUpdate: '500'});
    assertApi('callInWindow').wasCalledWith('tandem', 'consent', 'update', {ad_storage: 'granted', ad_user_data: 'granted'});
    assertApi('gtmOnSuccess').wasCalled();
- name: Identify leaves out the fields that are empty on the page
  code: |-
    runCode({action: 'identify', forgetIdentity: false, email: 'ann@example.com', phone: '+1 650 555 1212', city: ''});
    assertApi('callInWindow').wasCalledWith('tandem', 'identify', {email: 'ann@example.com', phone: '+1 650 555 1212'});
    assertApi('gtmOnSuccess').wasCalled();
- name: Identify can forget the visitor
  code: |-
    runCode({action: 'identify', forgetIdentity: true, email: 'ann@example.com'});
    assertApi('callInWindow').wasCalledWith('tandem', 'identify', null);
    assertApi('gtmOnSuccess').wasCalled();
setup: |-
  const templateStorage = require('templateStorage');
  templateStorage.clear();
  const scriptUrl = 'https://www.example.com/tandem/tandem.js';


___NOTES___

Tandem's Google Tag Manager template (gtm/template.tpl in the Tandem repository; README, "Google
Tag Manager"). Before use, replace www.example.com in the Script URL field and in the "Injects
scripts" permission with the host that serves your copy of tandem.js.

Success and failure: Initialise succeeds when tandem.js has loaded and fails when it cannot be
loaded. The other actions succeed as soon as their call is handed to Tandem (queued until the
loader replays it, or taken by the live tag) and fail only when tandem.js already failed to load
on the page. Each firing signals exactly one of the two, once.

The ___TESTS___ scenarios also run outside GTM, against an emulation of the sandboxed APIs:
node --test tests/e2e/gtm_template.test.mjs

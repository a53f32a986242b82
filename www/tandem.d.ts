// Types for Tandem's API, the same through the snippet (window.tandem) and dist/tandem.mjs.

export type StandardEvent =
  | 'PageView' | 'ViewContent' | 'Search' | 'AddToCart' | 'AddToWishlist' | 'InitiateCheckout'
  | 'AddPaymentInfo' | 'Purchase' | 'Lead' | 'CompleteRegistration' | 'Contact' | 'CustomizeProduct'
  | 'Donate' | 'FindLocation' | 'Schedule' | 'StartTrial' | 'SubmitApplication' | 'Subscribe';

export interface TandemError {
  /** Stable code, e.g. 'missing_field', 'invalid_currency', 'invalid_event_name'. */
  code: string;
  /** What is wrong and how to fix it. */
  message: string;
  /** The offending input, as JSON text (capped). */
  input: string;
}

export interface TandemConfig {
  /** First-party endpoint, relative or absolute. Default '/collect'. */
  endpoint?: string;
  /** sendPageView: false leaves PageView to your own fbq snippet. */
  meta?: { pixelId: string | string[]; load?: boolean; sendPageView?: boolean };
  google?: {
    tagId?: string;
    ads?: { id: string; labels: Partial<Record<StandardEvent | string, string>> };
    load?: boolean;
    /** Send page_view from Tandem when gtag is the site's own (its config usually sends one). */
    sendPageView?: boolean;
  };
  /** sendPageView: false leaves PageView to your own ttq.page(). */
  tiktok?: { pixelId: string; load?: boolean; sendPageView?: boolean };
  /** Cookie domain; default: the registrable domain. */
  cookieDomain?: string;
  /** Send a PageView on init. Default true. */
  autoPageView?: boolean;
  /** Days click IDs and UTMs are kept. Default 90. */
  attributionWindowDays?: number;
  /** Endpoint batching. Defaults: windowMs 0 (the end of the current task), maxEvents 20, maxBytes 16384. */
  batch?: { windowMs?: number; maxEvents?: number; maxBytes?: number };
  /** Bounds of the undelivered queue in localStorage. Defaults: maxEvents 100, maxBytes 100000. */
  queue?: { maxEvents?: number; maxBytes?: number };
  debug?: boolean;
  onError?: (error: TandemError) => void;
  /** 'advanced' (default): counted without identifiers while denied; 'basic': nothing sent without ad consent. */
  consentMode?: 'advanced' | 'basic';
  /** Global Privacy Control: 'honor' (default) denies ad_user_data and ad_personalization. */
  gpc?: 'honor' | 'ignore';
}

export interface ContentItem {
  id: string | number;
  quantity?: number;
  price?: number;
  name?: string;
  category?: string;
}

export interface EventParams {
  value?: number;
  /** ISO 4217, e.g. 'EUR'. Required with value. */
  currency?: string;
  order_id?: string | number;
  contents?: ContentItem[];
  content_ids?: Array<string | number>;
  content_type?: 'product' | 'product_group';
  content_name?: string;
  content_category?: string;
  num_items?: number;
  search_string?: string;
  predicted_ltv?: number;
  status?: string | boolean;
  [custom: string]: unknown;
}

export interface TrackOptions {
  /** Your own id for this event (e.g. the order id your backend also sends). 1-64 of [A-Za-z0-9_.:-]. */
  eventId?: string | number;
  /** The same as eventId, in fbq's spelling. */
  eventID?: string | number;
  /** The same as eventId, in ttq's spelling. */
  event_id?: string | number;
}

export type ConsentSignal = 'granted' | 'denied';
/** Google Consent Mode v2 purposes; wait_for_update (ms) only on a default. */
export interface ConsentValues {
  ad_storage?: ConsentSignal;
  analytics_storage?: ConsentSignal;
  ad_user_data?: ConsentSignal;
  ad_personalization?: ConsentSignal;
  wait_for_update?: number;
}
/** Hashed in the browser to each platform's rules; null removes a field. */
export interface Identity {
  email?: string | null;
  phone?: string | number | null;
  firstName?: string | null;
  lastName?: string | null;
  city?: string | null;
  state?: string | null;
  zip?: string | number | null;
  country?: string | null;
  gender?: string | null;
  dateOfBirth?: string | null;
  externalId?: string | number | null;
}

export interface Tandem {
  (command: 'init', config: TandemConfig): null;
  /** Returns the event_id once loaded; null if rejected (see onError), undefined while queued. */
  (command: 'track', name: StandardEvent | string, params?: EventParams, options?: TrackOptions | string | number): string | null | undefined;
  (command: 'page'): string | null | undefined;
  (command: 'consent', kind: 'default' | 'update', values: ConsentValues): null | undefined;
  (command: 'identify', values: Identity | null): null | undefined;
  q?: IArguments[];
  loaded?: boolean;
  version?: string;
  /** Override where the wasm file is fetched from (set on the stub before the loader runs). */
  wasmUrl?: string;
  /** The wasm's module, compiled by the snippet's second line while the loader is on its way (set on the stub before the loader runs); a promise of nothing makes the loader compile the file itself. */
  compiled?: Promise<WebAssembly.Module | void>;
}

export declare const tandem: Tandem;
/** Resolves true once the wasm is live; false as soon as the plain-JS path has taken over (WebAssembly refused) or at once on the server, or after timeoutMs (default 10 s). */
export declare function ready(timeoutMs?: number): Promise<boolean>;
export default tandem;

declare global {
  interface Window {
    tandem: Tandem;
  }
}

// What the measurement scripts (npm run bench, ab, startup) share: the README snippet's inline
// part, and the emulated slow network.
//
// The snippet's inline part: the stub, the line that fetches and compiles the wasm at `wasmUrl`
// while the loader is on its way, then init with meta, google and tiktok configured and `load:
// false` (each page puts no-op or recording fbq / gtag / ttq in place). `extra`, a JSON object's
// text, is spread into the config last.
export function snippetInit(wasmUrl, extra = '') {
  return `window.tandem = window.tandem || function () { (window.tandem.q = window.tandem.q || []).push(arguments); };
${compileLine(wasmUrl)}
tandem('init', {
  endpoint: '/collect',
  meta: { pixelId: '123456789012345', load: false },
  google: { tagId: 'G-XXXXXXX', ads: { id: 'AW-123456789', labels: { Purchase: 'AbC-dEfGh' } }, load: false },
  tiktok: { pixelId: 'CXXXXXXXXXXXXXXXXXXX', load: false },${extra ? `
  ...${extra},` : ''}
});`;
}

// The README snippet's second line: the wasm's compilation started by the page (tandem.compiled),
// not by the loader once it has arrived (www/loader.js, bootTandem).
export function compileLine(wasmUrl) {
  return `if (!tandem.loaded && !tandem.compiled && window.WebAssembly && WebAssembly.compileStreaming && window.fetch) tandem.compiled = WebAssembly.compileStreaming(fetch(${JSON.stringify(wasmUrl)})).catch(function () {});`;
}

// The emulated network for the "slow network" loads: DevTools throttling (latency is added to every
// request, so each sequential request costs one round trip, as over a real network).
export const SLOW = { latency: 50, downKbit: 10_000, upKbit: 5_000 };

/** Puts `page` (of `context`) on the SLOW network, through the DevTools protocol. */
export async function emulateSlowNetwork(context, page) {
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: SLOW.latency,
    downloadThroughput: (SLOW.downKbit * 1000) / 8, uploadThroughput: (SLOW.upKbit * 1000) / 8,
  });
}

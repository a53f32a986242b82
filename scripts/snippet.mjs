// The README snippet's inline part as the measurement scripts load it (npm run bench, ab,
// startup): the stub, then init with meta, google and tiktok configured and `load: false` (each
// page puts no-op or recording fbq / gtag / ttq in place). `extra`, a JSON object's text, is
// spread into the config last.
export function snippetInit(extra = '') {
  return `window.tandem = window.tandem || function () { (window.tandem.q = window.tandem.q || []).push(arguments); };
tandem('init', {
  endpoint: '/collect',
  meta: { pixelId: '123456789012345', load: false },
  google: { tagId: 'G-XXXXXXX', ads: { id: 'AW-123456789', labels: { Purchase: 'AbC-dEfGh' } }, load: false },
  tiktok: { pixelId: 'CXXXXXXXXXXXXXXXXXXX', load: false },${extra ? `
  ...${extra},` : ''}
});`;
}

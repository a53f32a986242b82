// Local stand-in for https://analytics.tiktok.com/i18n/pixel/events.js (tests route the real URL here).
window.__stubLoaded = window.__stubLoaded || {};
window.__stubLoaded.tiktok = true;

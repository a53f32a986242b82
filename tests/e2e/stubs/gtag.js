// Local stand-in for https://www.googletagmanager.com/gtag/js (tests route the real URL here).
window.__stubLoaded = window.__stubLoaded || {};
window.__stubLoaded.google = true;

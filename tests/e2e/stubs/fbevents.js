// Local stand-in for https://connect.facebook.net/en_US/fbevents.js (tests route the real URL here).
// The base code already defined window.fbq with a queue; this marks the script as having arrived.
window.__stubLoaded = window.__stubLoaded || {};
window.__stubLoaded.meta = true;

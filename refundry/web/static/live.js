// The live case page: served from /static under the strict CSP (script-src 'self'; no inline
// code; connect-src 'self' lets EventSource reach /cases/{id}/events). Two things, both only
// enhancements of a page that is whole without JavaScript:
// 1. #case-live[data-events] names the stream; each "case" event carries the live fragment,
//    rendered by the server and escaped there, which replaces the old one; #case-news (a
//    role=status region) then reads the new state aloud. An "end" event (the case is final)
//    closes the stream; otherwise the browser reconnects by itself with the last version.
//    The fragment is not replaced while the person is typing in one of its forms.
// 2. Each .countdown[data-seconds] ticks down once a second in the page's language
//    (Intl.NumberFormat's unit style, the same CLDR words the server wrote), in its two
//    largest units as the server writes spans; at zero it shows its data-due text.
"use strict";

(function () {
  var UNITS = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];

  function span(seconds, locale) {
    var parts = [];
    var left = seconds;
    for (var i = 0; i < UNITS.length; i++) {
      var count = Math.floor(left / UNITS[i][1]);
      left -= count * UNITS[i][1];
      if (count && parts.length < 2) {
        parts.push(new Intl.NumberFormat(locale, {
          style: "unit", unit: UNITS[i][0], unitDisplay: "short"
        }).format(count));
      } else if (parts.length) {
        break;
      }
    }
    return parts.join(" ");
  }

  var started = Date.now();
  var ticking = [];

  function watch(root) {
    ticking = [];
    var found = root.querySelectorAll(".countdown[data-seconds]");
    for (var i = 0; i < found.length; i++) {
      var el = found[i];
      ticking.push({
        el: el,
        end: Date.now() + 1000 * parseInt(el.getAttribute("data-seconds"), 10),
      });
    }
  }

  function tick() {
    for (var i = 0; i < ticking.length; i++) {
      var t = ticking[i];
      var left = Math.max(0, Math.round((t.end - Date.now()) / 1000));
      var text = left > 0
        ? span(left, t.el.getAttribute("data-locale") || "en")
        : t.el.getAttribute("data-due");
      if (t.el.textContent !== text) t.el.textContent = text;
    }
  }

  function busy(root) {
    var active = document.activeElement;
    return active && root.contains(active) && /^(TEXTAREA|INPUT|SELECT)$/.test(active.tagName);
  }

  function follow(root) {
    var url = root.getAttribute("data-events");
    if (!url || root.hasAttribute("data-final") || !window.EventSource) return;
    var news = document.getElementById("case-news");
    var source = new EventSource(url);
    var waiting = null;
    function swap(html) {
      if (busy(root)) { waiting = html; return; }
      waiting = null;
      root.innerHTML = html;
      watch(root);
      tick();
      var state = document.getElementById("case-state");
      if (news && state) news.textContent = state.textContent;
      root.setAttribute("data-updated", String(Date.now() - started));
    }
    source.addEventListener("case", function (event) { swap(event.data); });
    source.addEventListener("end", function (event) {
      source.close();
      // the server could not draw the case: the page says it stopped following it
      var stopped = document.getElementById("case-stopped");
      if (event.data === "error" && stopped) stopped.hidden = false;
    });
    root.addEventListener("focusout", function () {
      if (waiting !== null) setTimeout(function () { if (waiting !== null) swap(waiting); }, 0);
    });
  }

  function start() {
    var root = document.getElementById("case-live");
    watch(document);
    tick();
    setInterval(tick, 1000);
    if (root) follow(root);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

(function (config) {
  "use strict";
  // dialtone DNI snippet: shows each visitor from a tracked source a number from that source's
  // pool. It never breaks the page: on any failure the page keeps the company's own number.
  var state = (window.dialtone = window.dialtone || {});
  state.status = "pending";
  var VISITOR = "dialtone_vid";
  var SESSION = "dialtone_sid";

  function readCookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) {
        try { return decodeURIComponent(parts[i].slice(eq + 1)); } catch (e) { return ""; }
      }
    }
    return "";
  }

  function writeCookie(name, value, maxAgeS) {
    var cookie = name + "=" + encodeURIComponent(value) + "; path=/; max-age=" + maxAgeS + "; SameSite=Lax";
    var domain = config.cookie_domain;
    var host = location.hostname;
    if (domain && (host === domain || host.slice(-domain.length - 1) === "." + domain)) {
      cookie += "; domain=" + domain;
    }
    if (location.protocol === "https:") cookie += "; Secure";
    document.cookie = cookie;
  }

  // The website number's national digits (the last 10 in the North American plan).
  var from = String(config.website_number || "").replace(/\D/g, "");
  var nanp = from.length === 11 && from.charAt(0) === "1";
  var national = nanp ? from.slice(1) : from;
  if (national.length < 6) { state.status = "kept"; return; }

  // Any way people write it: (404) 555-0199, 404-555-0199, 404.555.0199, +1 404 555 0199,
  // 4045550199, 404/555-0199, with typeset dashes (404–555–0199), with an optional country
  // code; not inside a longer run of digits.
  var sep = "[\\s.\\-\\u00a0\\u2010-\\u2015\\u2212/]*";
  var body;
  if (nanp) {
    body = "(?:\\+?1" + sep + ")?\\(?" + national.slice(0, 3) + "\\)?" + sep +
      national.slice(3, 6) + sep + national.slice(6);
  } else {
    body = "\\+?" + national.split("").join(sep);
  }
  var pattern = new RegExp("(^|[^\\d+])(" + body + ")(?!\\d)", "g");

  // The new number's digits, national only when the website number is written nationally.
  function digitsOf(to) {
    var digits = to.replace(/\D/g, "");
    return nanp && digits.length === 11 ? digits.slice(1) : digits;
  }

  // Writes the new number's digits into the old one's shape, so the page's style is kept.
  function reshape(match, to) {
    var digits = digitsOf(to);
    var out = match.split("");
    var j = digits.length - 1;
    for (var i = out.length - 1; i >= 0 && j >= 0; i--) {
      if (out[i] >= "0" && out[i] <= "9") out[i] = digits.charAt(j--);
    }
    return out.join("");
  }

  function replaceIn(text, to) {
    pattern.lastIndex = 0;
    if (!pattern.test(text)) return text;
    pattern.lastIndex = 0;
    return text.replace(pattern, function (_, before, number) { return before + reshape(number, to); });
  }

  var SKIP = { SCRIPT: 1, STYLE: 1, TEXTAREA: 1, INPUT: 1, NOSCRIPT: 1 };

  function swapIn(root, to) {
    if (!root) return;
    if (root.nodeType === 3) {
      var replaced = replaceIn(root.nodeValue, to);
      if (replaced !== root.nodeValue) root.nodeValue = replaced;
      return;
    }
    if (root.nodeType !== 1 && root.nodeType !== 9 && root.nodeType !== 11) return;
    if (root.nodeType === 1 && SKIP[root.nodeName]) return;
    var walker = document.createTreeWalker(root, 4 /* NodeFilter.SHOW_TEXT */, null);
    var node;
    var texts = [];
    while ((node = walker.nextNode())) {
      if (!node.parentNode || !SKIP[node.parentNode.nodeName]) texts.push(node);
    }
    for (var i = 0; i < texts.length; i++) swapIn(texts[i], to);
    swapSplit(texts, to);
    var links = root.querySelectorAll ? root.querySelectorAll('a[href^="tel:"]') : [];
    var all = root.nodeType === 1 && root.matches && root.matches('a[href^="tel:"]') ? [root] : [];
    for (var k = 0; k < links.length; k++) all.push(links[k]);
    for (var m = 0; m < all.length; m++) {
      var href = all[m].getAttribute("href");
      var swapped = "tel:" + replaceIn(href.slice(4), to);
      if (swapped !== href) all[m].setAttribute("href", swapped);
    }
  }

  // Elements that flow inside a line of text: a number may be split across them for styling,
  // as in <b>(404)</b> <span>555-0199</span>. Anything else (a paragraph, a cell) ends a line.
  var INLINE = {
    A: 1, ABBR: 1, B: 1, BDI: 1, BDO: 1, CITE: 1, CODE: 1, DFN: 1, EM: 1, FONT: 1, I: 1, KBD: 1,
    LABEL: 1, MARK: 1, Q: 1, S: 1, SAMP: 1, SMALL: 1, SPAN: 1, STRONG: 1, SUB: 1, SUP: 1,
    TIME: 1, U: 1, VAR: 1
  };

  function lineOf(node) {
    var p = node.parentNode;
    while (p && p.nodeType === 1 && INLINE[p.nodeName]) p = p.parentNode;
    return p;
  }

  // Numbers split across inline elements: runs of text nodes in one line are read as one text,
  // and each digit of a match is rewritten in the node it is in, so the markup stays.
  function swapSplit(texts, to) {
    var i = 0;
    while (i < texts.length) {
      var line = lineOf(texts[i]);
      var run = [texts[i++]];
      while (i < texts.length && lineOf(texts[i]) === line) run.push(texts[i++]);
      if (run.length > 1) swapAcross(run, to);
    }
  }

  function swapAcross(run, to) {
    var text = "", owner = [], offset = [], chars = [];
    for (var k = 0; k < run.length; k++) {
      var value = run[k].nodeValue;
      chars.push(value.split(""));
      for (var c = 0; c < value.length; c++) { owner.push(k); offset.push(c); }
      text += value;
    }
    var digits = digitsOf(to);
    var changed = false;
    var m;
    pattern.lastIndex = 0;
    while ((m = pattern.exec(text))) {
      var start = m.index + m[1].length, end = start + m[2].length;
      // A match inside one node was already swapped there.
      if (owner[start] === owner[end - 1]) continue;
      var j = digits.length - 1;
      for (var p = end - 1; p >= start && j >= 0; p--) {
        var ch = text.charAt(p);
        if (ch >= "0" && ch <= "9") { chars[owner[p]][offset[p]] = digits.charAt(j--); changed = true; }
      }
    }
    if (!changed) return;
    for (var n = 0; n < run.length; n++) {
      var next = chars[n].join("");
      if (next !== run[n].nodeValue) run[n].nodeValue = next;
    }
  }

  function post(path, payload, done) {
    var finished = false;
    function finish(status, body) {
      if (finished) return;
      finished = true;
      try { done(status, body); } catch (e) { /* the page stays as it is */ }
    }
    try {
      var xhr = new XMLHttpRequest();
      xhr.open("POST", config.api + path, true);
      // text/plain keeps the request "simple": no CORS preflight before the number arrives.
      xhr.setRequestHeader("Content-Type", "text/plain;charset=UTF-8");
      xhr.timeout = 5000;
      xhr.onload = function () {
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        finish(xhr.status, body);
      };
      xhr.onerror = xhr.ontimeout = function () { finish(0, null); };
      xhr.send(JSON.stringify(payload));
    } catch (e) {
      finish(0, null);
    }
  }

  var observer = null;
  var keepalive = null;

  function show(number) {
    state.number = number;
    state.status = "swapped";
    swapIn(document.body, number);
    if (!observer && window.MutationObserver) {
      // Content that appears after load (chat widgets, single-page apps) is swapped too.
      observer = new MutationObserver(function (mutations) {
        for (var i = 0; i < mutations.length; i++) {
          var m = mutations[i];
          if (m.type === "characterData") swapIn(lineOf(m.target) || m.target, state.number);
          for (var j = 0; j < m.addedNodes.length; j++) {
            // Text or an inline element may complete a number split across its line.
            var added = m.addedNodes[j];
            var inline = added.nodeType === 3 || (added.nodeType === 1 && INLINE[added.nodeName]);
            swapIn(inline ? lineOf(added) || added : added, state.number);
          }
          if (m.type === "attributes") swapIn(m.target, state.number);
        }
      });
      observer.observe(document.body, {
        childList: true, subtree: true, characterData: true,
        attributes: true, attributeFilter: ["href"]
      });
    }
  }

  function start() {
    post("/dni/v1/sessions", {
      company: config.company,
      visitor_id: readCookie(VISITOR),
      session_id: readCookie(SESSION),
      landing_url: location.href,
      referrer: document.referrer || null
    }, function (status, res) {
      if (status !== 200 || !res) { state.status = "kept"; state.reason = "request failed"; return; }
      if (res.visitor_id) writeCookie(VISITOR, res.visitor_id, 365 * 24 * 3600);
      if (!res.swap) { state.status = "kept"; state.reason = res.reason; return; }
      writeCookie(SESSION, res.session_id, res.lease_s);
      state.session = res.session_id;
      state.tracker = res.tracker;
      show(res.number);
      if (keepalive) clearInterval(keepalive);
      // While the page is open its lease stays alive; once it closes the lease runs out.
      keepalive = setInterval(function () {
        if (document.visibilityState === "hidden") return;
        post("/dni/v1/sessions/" + encodeURIComponent(state.session) + "/keepalive", {}, function (s, r) {
          if (s === 200 && r) writeCookie(SESSION, state.session, r.lease_s);
          // The lease ran out (the computer slept): ask again, most likely for the same number.
          else if (s === 404) { clearInterval(keepalive); keepalive = null; start(); }
        });
      }, Math.max(15, res.keepalive_s) * 1000);
    });
  }

  function begin() {
    try { start(); } catch (e) { state.status = "kept"; state.reason = "error"; }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", begin);
  else begin();
})

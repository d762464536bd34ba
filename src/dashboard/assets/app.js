// wa-gateway dashboard: live device status and QR rotation over Server-Sent Events.
// Pages work without it; it only saves reloading.
(function () {
  "use strict";
  var box = document.getElementById("device");
  if (!box || !window.EventSource) { return; }
  function label(status) {
    return box.getAttribute("data-label-" + String(status).replace(/_/g, "-")) || status;
  }
  var badge = document.getElementById("device-status");
  var pairing = document.getElementById("pairing");
  var note = document.getElementById("connected-note");
  var qr = document.getElementById("qr");
  var qrBase = box.getAttribute("data-qr");
  var rotations = 0;

  function reloadQr() {
    rotations += 1;
    if (qr) { qr.src = qrBase + "?v=" + rotations + "-" + Date.now(); }
  }
  if (qr) {
    qr.addEventListener("error", function () { qr.hidden = true; });
    qr.addEventListener("load", function () { qr.hidden = false; qr.setAttribute("data-loaded", String(rotations)); });
  }

  var events = new EventSource(box.getAttribute("data-events"));
  events.addEventListener("status", function (e) {
    var data;
    try { data = JSON.parse(e.data); } catch (err) { return; }
    var status = data.status;
    badge.setAttribute("data-status", status);
    badge.textContent = label(status);
    var connected = status === "connected";
    if (pairing) { pairing.hidden = connected; }
    if (note) { note.hidden = !connected; }
  });
  events.addEventListener("qr", function () {
    if (pairing) { pairing.hidden = false; }
    reloadQr();
  });
})();

// New messages on the home and history pages: rows are added on top as they arrive, and a
// shown row follows its message's changes (status, edits, deletion); the home page's device
// badges follow their status.
(function () {
  "use strict";
  var table = document.querySelector("table[data-live]");
  if (!table || !window.EventSource) { return; }
  var body = table.tBodies[0];
  var columns = (table.getAttribute("data-columns") || "").split(" ");
  function label(key) { return table.getAttribute("data-label-" + key) || key; }
  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    row.appendChild(td);
    return td;
  }
  function tag(className, attribute, value, text) {
    var span = document.createElement("span");
    span.className = className;
    span.setAttribute(attribute, value);
    span.textContent = text;
    return span;
  }
  // The kind of a message that is not plain text, then the text, then its marks, as the page
  // renders its own rows; a label the table does not carry is left out.
  function fillText(tx, m) {
    tx.textContent = "";
    var kind = m.type && m.type !== "text" ? table.getAttribute("data-label-kind-" + m.type) : null;
    if (kind) {
      tx.appendChild(tag("kind", "data-kind", m.type, kind));
      tx.appendChild(document.createTextNode(" "));
    }
    tx.appendChild(document.createTextNode(m.text == null ? "" : String(m.text)));
    ["edited", "revoked", "forwarded"].forEach(function (mark) {
      var text = m[mark] ? table.getAttribute("data-label-mark-" + mark) : null;
      if (text) {
        tx.appendChild(document.createTextNode(" "));
        tx.appendChild(tag("mark", "data-mark", mark, text));
      }
    });
  }
  function setStatus(badge, status) {
    badge.setAttribute("data-status", status);
    badge.textContent = label(status);
  }
  var events = new EventSource(table.getAttribute("data-live"));
  events.addEventListener("message", function (e) {
    var m;
    try { m = JSON.parse(e.data); } catch (err) { return; }
    if (body.querySelector('tr[data-id="' + m.id + '"]')) { return; }
    var row = document.createElement("tr");
    row.setAttribute("data-id", String(m.id));
    row.className = "fresh";
    columns.forEach(function (c) {
      if (c === "time") {
        var td = cell(row, "");
        var a = document.createElement("a");
        a.href = "/history/" + m.id;
        a.textContent = m.created_at;
        td.appendChild(a);
      } else if (c === "direction") {
        cell(row, label(m.direction));
      } else if (c === "status") {
        var st = cell(row, "");
        var badge = document.createElement("span");
        badge.className = "badge";
        setStatus(badge, m.status);
        st.appendChild(badge);
      } else if (c === "text") {
        var tx = cell(row, "");
        tx.className = "text";
        fillText(tx, m);
      } else if (c === "chat") {
        // The sender's LID, small, beside a chat it does not name.
        var ch = cell(row, m.chat);
        ch.className = "chat";
        if (m.sender_lid && m.sender_lid !== m.chat) {
          var lid = document.createElement("small");
          lid.className = "muted lid";
          lid.title = "LID";
          lid.textContent = m.sender_lid;
          ch.appendChild(document.createTextNode(" "));
          ch.appendChild(lid);
        }
      } else {
        cell(row, m[c]);
      }
    });
    body.insertBefore(row, body.firstChild);
    table.hidden = false;
    var counter = document.getElementById(m.direction === "in" ? "received-today" : "sent-today");
    if (counter && /^\d+$/.test(counter.textContent)) {
      counter.textContent = String(Number(counter.textContent) + 1);
    }
    var empty = table.parentNode.parentNode.querySelector(".empty");
    if (empty) { empty.hidden = true; }
  });
  // A shown message changed: its status badge, and its text and marks when more than the
  // status changed.
  events.addEventListener("change", function (e) {
    var m;
    try { m = JSON.parse(e.data); } catch (err) { return; }
    var row = body.querySelector('tr[data-id="' + m.id + '"]');
    if (!row) { return; }
    var badge = row.querySelector(".badge[data-status]");
    if (badge) { setStatus(badge, m.status); }
    var tx = row.querySelector("td.text");
    if (m.content && tx) { fillText(tx, m); }
  });
  // Changes were missed: the page is read again and the rows it shows are replaced.
  events.addEventListener("resync", function () {
    if (!window.fetch || !window.DOMParser) { return; }
    fetch(window.location.href, { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.text(); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        Array.prototype.forEach.call(doc.querySelectorAll("table[data-live] tr[data-id]"), function (fresh) {
          var row = body.querySelector('tr[data-id="' + fresh.getAttribute("data-id") + '"]');
          if (row) { body.replaceChild(document.importNode(fresh, true), row); }
        });
      })
      .catch(function () {});
  });
  var devices = document.getElementById("device-list");
  events.addEventListener("device", function (e) {
    var d;
    try { d = JSON.parse(e.data); } catch (err) { return; }
    var badge = devices && devices.querySelector('li[data-device-id="' + d.id + '"] .badge');
    if (!badge) { return; }
    badge.setAttribute("data-status", d.status);
    badge.textContent = devices.getAttribute("data-label-" + d.status) || d.status;
  });
})();

// Forms that delete or cancel ask first.
(function () {
  "use strict";
  document.addEventListener("submit", function (e) {
    var question = e.target.getAttribute && e.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { e.preventDefault(); }
  });
})();

// History details open in a dialog over the list (the link still works without JavaScript).
(function () {
  "use strict";
  var table = document.getElementById("history");
  if (!table || !window.fetch || !window.DOMParser) { return; }
  var dialog = document.createElement("dialog");
  dialog.id = "detail";
  dialog.setAttribute("aria-labelledby", "detail-title");
  document.body.appendChild(dialog);
  dialog.addEventListener("click", function (e) {
    if (e.target === dialog || (e.target.getAttribute && e.target.getAttribute("data-close") !== null)) {
      dialog.close();
    }
  });
  table.addEventListener("click", function (e) {
    var link = e.target.closest ? e.target.closest("a[href^='/history/']") : null;
    if (!link || e.ctrlKey || e.metaKey || e.shiftKey || !dialog.showModal) { return; }
    e.preventDefault();
    fetch(link.getAttribute("href"), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.text(); })
      .then(function (html) {
        var card = new DOMParser().parseFromString(html, "text/html").querySelector("main .card");
        if (!card) { throw new Error("no details"); }
        var title = card.querySelector("h1");
        if (title) { title.id = "detail-title"; }
        var back = card.querySelector("a[href='/history']");
        if (back) {
          var close = document.createElement("button");
          close.type = "button";
          close.setAttribute("data-close", "");
          close.id = "detail-close";
          close.textContent = back.textContent;
          back.parentNode.replaceChild(close, back);
        }
        dialog.replaceChildren(card);
        dialog.showModal();
      })
      .catch(function () { window.location.href = link.getAttribute("href"); });
  });
})();

// The inbox: the open conversation gets its new messages, its ticks and its changed bubbles,
// and the chat list its new unread counts, as they arrive, without a reload. New messages,
// changed bubbles and the list are asked of the page again (its `messages` and `list`
// fragments) and swapped in, so they look exactly as the page renders them; a status change
// only redraws the bubble's ticks.
(function () {
  "use strict";
  var inbox = document.getElementById("inbox");
  if (!inbox || !window.EventSource || !window.fetch) { return; }
  var conversation = document.getElementById("conversation");
  var chat = inbox.getAttribute("data-chat");
  var phone = inbox.getAttribute("data-device-phone");
  var more = inbox.getAttribute("data-more");
  var listUrl = inbox.getAttribute("data-list");
  // The ticks of each status, as chats_parts.html draws them.
  var TICKS = { queued: "\u25f7", sent: "\u2713", delivered: "\u2713\u2713", read: "\u2713\u2713", failed: "!" };

  function scrollDown() {
    if (conversation) { conversation.scrollTop = conversation.scrollHeight; }
  }
  function bubbleOf(id) {
    return conversation ? conversation.querySelector('li[data-id="' + id + '"]') : null;
  }
  function lastId() {
    var max = 0;
    if (conversation) {
      Array.prototype.forEach.call(conversation.querySelectorAll("li[data-id]"), function (li) {
        max = Math.max(max, Number(li.getAttribute("data-id")) || 0);
      });
    }
    return max;
  }
  function get(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error(String(r.status)); }
      return r.text();
    });
  }
  function parse(html) {
    var t = document.createElement("template");
    t.innerHTML = html;
    return t.content;
  }
  function tick(li, status) {
    var ticks = li.querySelector(".ticks");
    if (!ticks) { return; }
    var label = inbox.getAttribute("data-label-st-" + status) || status;
    ticks.setAttribute("data-status", status);
    ticks.setAttribute("title", label);
    ticks.setAttribute("aria-label", label);
    ticks.textContent = TICKS[status] || "";
  }
  function newMessages() {
    return get(more + "&after=" + lastId()).then(function (html) {
      var added = false;
      Array.prototype.forEach.call(parse(html).querySelectorAll("li[data-id]"), function (li) {
        if (bubbleOf(li.getAttribute("data-id"))) { return; }
        li.classList.add("fresh");
        conversation.appendChild(li);
        added = true;
      });
      if (added) {
        var empty = document.getElementById("no-messages");
        if (empty) { empty.hidden = true; }
        scrollDown();
      }
    });
  }
  // Replaces the bubbles `ids` (all shown ones with `all`) with the page's rendering of now.
  function redraw(ids, all) {
    var after = all ? 0 : Math.min.apply(null, ids) - 1;
    return get(more + "&after=" + after).then(function (html) {
      Array.prototype.forEach.call(parse(html).querySelectorAll("li[data-id]"), function (li) {
        var id = Number(li.getAttribute("data-id"));
        var shown = bubbleOf(id);
        if (shown && (all || ids.indexOf(id) >= 0)) { conversation.replaceChild(li, shown); }
      });
    });
  }
  function refreshList() {
    return get(listUrl).then(function (html) {
      var fresh = parse(html).querySelector("#chat-list-box");
      var box = document.getElementById("chat-list-box");
      if (fresh && box) {
        var scroll = box.scrollTop;
        box.parentNode.replaceChild(fresh, box);
        fresh.scrollTop = scroll;
      }
    });
  }
  // One round of fetches at a time; news arriving meanwhile asks for another round after it.
  function nothing() { return { list: false, messages: false, all: false, bubbles: {} }; }
  var busy = false;
  var wanted = nothing();
  function ignore() {}
  function run() {
    var ids = Object.keys(wanted.bubbles).map(Number);
    if (busy || !(wanted.list || wanted.messages || wanted.all || ids.length)) { return; }
    var want = wanted;
    wanted = nothing();
    busy = true;
    var round = Promise.resolve();
    if (more && conversation) {
      if (want.messages || want.all) { round = round.then(newMessages).catch(ignore); }
      if (want.all || ids.length) {
        round = round.then(function () { return redraw(ids, want.all); }).catch(ignore);
      }
    }
    round
      .then(function () { return want.list ? refreshList() : null; })
      .catch(ignore)
      .then(function () { busy = false; run(); });
  }
  var events = new EventSource(inbox.getAttribute("data-live"));
  events.addEventListener("message", function (e) {
    var m;
    try { m = JSON.parse(e.data); } catch (err) { return; }
    if (chat && m.chat === chat && m.device === phone) { wanted.messages = true; }
    wanted.list = true;
    run();
  });
  // A message changed: a shown bubble gets its ticks at once, and is drawn again when more
  // than its status changed (an edit, a deletion, a reaction).
  events.addEventListener("change", function (e) {
    var m;
    try { m = JSON.parse(e.data); } catch (err) { return; }
    var li = bubbleOf(m.id);
    if (!li) { return; }
    tick(li, m.status);
    if (m.content) {
      wanted.bubbles[m.id] = true;
      run();
    }
  });
  // Changes were missed: everything shown is read again.
  events.addEventListener("resync", function () {
    wanted.all = true;
    wanted.messages = true;
    wanted.list = true;
    run();
  });
  scrollDown();
})();

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

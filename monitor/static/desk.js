// Keyboard shortcuts for the review desk. Everything also works without this file (plain links and forms).
(function () {
  "use strict";
  function typing(event) {
    var t = event.target;
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  }
  function click(selector) {
    var element = document.querySelector(selector);
    if (element) { element.click(); return true; }
    return false;
  }
  var rows = [];
  var current = -1;
  function select(index) {
    if (!rows.length) { return; }
    if (current >= 0) { rows[current].classList.remove("selected"); }
    current = Math.max(0, Math.min(rows.length - 1, index));
    rows[current].classList.add("selected");
    rows[current].scrollIntoView({block: "nearest"});
  }
  document.addEventListener("DOMContentLoaded", function () {
    rows = Array.prototype.slice.call(document.querySelectorAll("tr.queue-row"));
    if (rows.length) { select(0); }
  });
  document.addEventListener("keydown", function (event) {
    if (typing(event) || event.ctrlKey || event.metaKey || event.altKey) { return; }
    var handled = true;
    switch (event.key) {
      case "j": select(current + 1); break;
      case "k": select(current - 1); break;
      case "o":
      case "Enter":
        if (current >= 0) { window.location.href = rows[current].getAttribute("data-href"); } else { handled = false; }
        break;
      case "c": handled = click("button#confirm"); break;
      case "f": handled = click("button#dismiss"); break;
      case "i": handled = click("button#claim"); break;
      case "e": handled = click("a#evidence"); break;
      case "u": window.location.href = "/queue"; break;
      case "?":
        var help = document.getElementById("shortcuts");
        if (help) { help.hidden = !help.hidden; }
        break;
      default: handled = false;
    }
    if (handled) { event.preventDefault(); }
  });
}());

// imgserv dashboard: enhancements only. Every page works without this file.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  // A form submitted twice (a double click, an impatient second press) would post twice:
  // disable its buttons once it is on its way.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    var buttons = form.querySelectorAll("button[type=submit], input[type=submit]");
    window.setTimeout(function () {
      buttons.forEach(function (b) { b.disabled = true; });
    }, 0);
  });
})();

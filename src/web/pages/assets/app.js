// imgserv dashboard: enhancements only. Every page works without this file.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  // A page with an error summary: focus moves to it (a screen reader reads it, the next Tab
  // goes to its links), and its links to a field focus that field (a link to #id alone only
  // scrolls to it).
  var summary = document.querySelector(".error-summary");
  if (summary) {
    summary.focus();
    summary.addEventListener("click", function (event) {
      var link = event.target.closest("a[href^='#']");
      var field = link && document.getElementById(link.getAttribute("href").slice(1));
      if (!field) return;
      event.preventDefault();
      field.focus();
      var label = field.labels && field.labels[0];
      if (label) label.scrollIntoView();
    });
  }

  // A form submitted twice (a double click, an impatient second press) would post twice:
  // disable its buttons once it is on its way.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || event.defaultPrevented) return;
    var buttons = form.querySelectorAll("button[type=submit], input[type=submit]");
    window.setTimeout(function () {
      buttons.forEach(function (b) { b.disabled = true; });
    }, 0);
  });

  // Copy buttons beside the URLs to embed (without script, the field's text can be selected).
  document.querySelectorAll("button.copy[data-copy]").forEach(function (button) {
    var input = document.getElementById(button.getAttribute("data-copy"));
    var status = document.querySelector(".copied");
    if (!input) return;
    button.hidden = false;
    button.setAttribute("aria-label", "Copy " + (input.labels[0] ? input.labels[0].textContent : "the URL"));
    button.addEventListener("click", function () {
      var done = function () { if (status) status.textContent = "Copied: " + input.value; };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(input.value).then(done, function () {
          input.select();
          if (status) status.textContent = "Select the URL and copy it (Ctrl+C).";
        });
      } else {
        input.select();
        try { document.execCommand("copy"); done(); } catch (e) { /* selected at least */ }
      }
    });
  });

  // Upload: drag and drop onto the file field, and one request a file with its progress.
  var form = document.querySelector("form[data-upload]");
  if (!form || !window.FormData || !window.XMLHttpRequest) return;
  var input = form.querySelector("input[type=file]");
  var drop = form.querySelector(".drop");
  var list = form.querySelector(".progress");
  var button = form.querySelector("button[type=submit]");
  if (drop && input && window.DataTransfer) {
    drop.addEventListener("dragover", function (e) { e.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
    drop.addEventListener("drop", function (e) {
      e.preventDefault();
      drop.classList.remove("over");
      if (e.dataTransfer && e.dataTransfer.files.length) {
        input.files = e.dataTransfer.files;
        input.dispatchEvent(new Event("change"));
      }
    });
  }

  function row(file) {
    var li = document.createElement("li");
    var name = document.createElement("strong");
    name.textContent = file.name;
    var bar = document.createElement("progress");
    bar.max = file.size || 1;
    bar.value = 0;
    bar.setAttribute("aria-label", "Uploading " + file.name);
    var words = document.createElement("span");
    words.textContent = " waiting";
    li.append(name, words, bar);
    list.append(li);
    return { li: li, bar: bar, words: words };
  }

  function send(file, shown) {
    return new Promise(function (resolve) {
      var data = new FormData();
      form.querySelectorAll("input[type=hidden], input[type=text], textarea").forEach(function (f) {
        if (f.name) data.append(f.name, f.value);
      });
      data.append("file", file, file.name);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) { shown.bar.max = e.total; shown.bar.value = e.loaded; }
        shown.words.textContent = " uploading";
      });
      xhr.addEventListener("load", function () {
        var outcome;
        try { outcome = JSON.parse(xhr.responseText).files[0]; } catch (e) { outcome = null; }
        shown.bar.value = shown.bar.max;
        if (outcome) {
          shown.li.className = outcome.kind;
          shown.words.textContent = ": " + outcome.words + " ";
          if (outcome.id) {
            var a = document.createElement("a");
            a.href = "image/" + outcome.id;
            a.textContent = "Open " + file.name;
            shown.words.append(a);
          }
        } else {
          shown.li.className = "refused";
          shown.words.textContent = ": refused (HTTP " + xhr.status + ")";
        }
        resolve();
      });
      xhr.addEventListener("error", function () {
        shown.li.className = "refused";
        shown.words.textContent = ": the connection failed";
        resolve();
      });
      xhr.send(data);
    });
  }

  form.addEventListener("submit", function (event) {
    if (!input.files.length) return;
    event.preventDefault();
    var files = Array.prototype.slice.call(input.files);
    list.textContent = "";
    button.disabled = true;
    var shown = files.map(row);
    files.reduce(function (done, file, i) {
      return done.then(function () { return send(file, shown[i]); });
    }, Promise.resolve()).then(function () {
      button.disabled = false;
      input.value = "";
    });
  });
})();

// piaoxi web page: the token cookie and the reading view's toggles. No framework.
(function () {
  "use strict";
  var COOKIE = "piaoxi_token";

  var form = document.getElementById("token-form");
  if (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var value = document.getElementById("token-input").value.trim();
      if (value) {
        document.cookie = COOKIE + "=" + encodeURIComponent(value) + "; path=/; SameSite=Strict";
      }
      location.reload();
    });
    document.getElementById("token-clear").addEventListener("click", function () {
      document.cookie = COOKIE + "=; path=/; max-age=0; SameSite=Strict";
      location.reload();
    });
  }

  // Reading view: show one pane (cleaned text, raw OCR with edits, list of edits).
  var toggles = document.querySelectorAll(".view-toggle");
  toggles.forEach(function (button) {
    button.addEventListener("click", function () {
      var view = button.getAttribute("data-view");
      toggles.forEach(function (b) { b.classList.toggle("on", b === button); });
      document.querySelectorAll(".pane").forEach(function (pane) {
        pane.hidden = pane.getAttribute("data-view") !== view;
      });
    });
  });
  var vertical = document.getElementById("vertical-toggle");
  if (vertical) {
    vertical.addEventListener("change", function () {
      document.querySelectorAll(".pane.text").forEach(function (pane) {
        pane.classList.toggle("vertical", vertical.checked);
      });
    });
  }
})();

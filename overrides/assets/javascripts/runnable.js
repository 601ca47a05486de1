/* "Copy as a runnable program" (hooks/chapters.py): a button's program is entry data-runnable of
   runnable.json beside the page, fetched on the first click; Material's dialog says it is copied. */
(function () {
  var programs = null;
  function say(text) {
    var dialog = document.querySelector("[data-md-component=dialog]");
    if (!dialog) return;
    dialog.querySelector(".md-dialog__inner").textContent = text;
    dialog.classList.add("md-dialog--active");
    setTimeout(function () { dialog.classList.remove("md-dialog--active"); }, 2000);
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest(".tpn-runnable");
    if (!button) return;
    var words = JSON.parse(document.getElementById("__config").textContent).translations;
    programs = programs || fetch("runnable.json").then(function (r) { return r.json(); });
    programs
      .then(function (all) { return navigator.clipboard.writeText(all[+button.dataset.runnable]); })
      .then(function () { say(words["clipboard.copied"]); }, function () { programs = null; });
  });
})();

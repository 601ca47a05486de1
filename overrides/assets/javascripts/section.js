/* Switching language keeps the reader's place. Both languages have the same sections in the same
   order (tests/test_parity.py), but their ids are in each language's words (#mixed-precision,
   #混合精度): so the language menu carries the section's position (#tpn-section-11, or -11.2 for
   the 2nd ### of the 12th ##), and the other page turns it back into its own heading's id. */
(function () {
  /* Each section heading with its position: "11" for the 12th ##, "11.2" for the 3rd ### under it. */
  function sections() {
    var h2 = -1, h3 = -1;
    var all = document.querySelectorAll(".md-content article h2[id], .md-content article h3[id]");
    return Array.prototype.map.call(all, function (h) {
      if (h.tagName === "H2") { h2 += 1; h3 = -1; } else { h3 += 1; }
      return {heading: h, place: h.tagName === "H2" ? String(h2) : h2 + "." + h3};
    });
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a.md-select__link[hreflang]");
    if (!link) return;
    /* The section the reader is in: the last heading at or above the top of the window. */
    var current = sections().filter(function (s) { return s.heading.getBoundingClientRect().top <= 100; }).pop();
    if (current) link.href = link.href.split("#")[0] + "#tpn-section-" + current.place;
  }, true);

  var asked = /^#tpn-section-(-?\d+)(?:\.(\d+))?$/.exec(location.hash);
  if (!asked) return;
  var all = sections(), h2 = String(Number(asked[1]));
  function at(place) { return all.find(function (s) { return s.place === place; }); }
  var found = (asked[2] !== undefined && at(h2 + "." + Number(asked[2]))) || at(h2);  // the ###, or else its ##
  if (!found) return;
  history.replaceState(null, "", "#" + encodeURIComponent(found.heading.id));
  found.heading.scrollIntoView();
})();

/* Switching language keeps the reader's place. Both languages have the same sections in the same
   order (tests/test_parity.py), but their ids are in each language's words (#mixed-precision,
   #混合精度): so the language menu carries the section's position (#tpn-section-11, or -11.2 for
   the 2nd ### of the 12th ##), and the other page turns it back into its own heading's id. */
(function () {
  function headings() {
    return Array.prototype.slice.call(document.querySelectorAll(".md-content article h2[id], .md-content article h3[id]"));
  }

  /* The section the reader is in: the last heading at or above the top of the window. */
  function position() {
    var all = headings(), current = null, h2 = -1, h3 = -1;
    all.forEach(function (h) { if (h.getBoundingClientRect().top <= 100) current = h; });
    if (!current) return "";
    all.some(function (h) {
      if (h.tagName === "H2") { h2 += 1; h3 = -1; } else { h3 += 1; }
      return h === current;
    });
    return "tpn-section-" + h2 + (current.tagName === "H3" ? "." + h3 : "");
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a.md-select__link[hreflang]");
    var place = link && position();
    if (place) link.href = link.href.split("#")[0] + "#" + place;
  }, true);

  var asked = /^#tpn-section-(-?\d+)(?:\.(\d+))?$/.exec(location.hash);
  if (!asked) return;
  var h2 = -1, h3 = -1, found = null;
  headings().forEach(function (h) {
    if (h.tagName === "H2") { h2 += 1; h3 = -1; } else { h3 += 1; }
    var here = h2 === Number(asked[1]);
    if (here && h.tagName === "H2" && !found) found = h;
    if (here && asked[2] !== undefined && h.tagName === "H3" && h3 === Number(asked[2])) found = h;
  });
  if (!found) return;
  history.replaceState(null, "", "#" + encodeURIComponent(found.id));
  found.scrollIntoView();
})();

/* Typeset the formulas pymdownx.arithmatex (generic: true) leaves in the page, with the site's
   own KaTeX (overrides/main.html loads both only on pages that have a formula):
   <span class="arithmatex">\( ... \)</span> inline, <div class="arithmatex">\[ ... \]</div> as a block. */
document.querySelectorAll(".arithmatex").forEach(function (el) {
  var tex = el.textContent.trim().replace(/^\\[(\[]/, "").replace(/\\[)\]]$/, "");
  katex.render(tex, el, {displayMode: el.tagName === "DIV", throwOnError: false});
});

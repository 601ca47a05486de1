/* Material's search worker (loaded below), with each query put in the words the index holds before
   Material reads it, and each page in the results linked with the words it matched. hooks/search_lang.py
   writes it next to Material's worker, and the pages' `search` address points at it.

   - The index's words. English: the index holds stems, and Material adds a wildcard to every query
     word, for which lunr skips its stemmer: each word is stemmed here ("training" -> "train*").
     Chinese: the index holds jieba's words, and a reader types a term without spaces: each run of
     Chinese characters is cut into the index's words, longest first ("混合精度" -> "混合 精度").
     Material's own cutter never reaches a run's last character ("混合精度" -> "混合"): it gets an
     index in which it finds no word, and leaves the words cut here as they are. Stop words ("a",
     "the", "的") are left out, since "a*" matches nearly every word.
   - Whole words first. With the wildcard a word also matches longer, rarer words ("class*":
     "classification"; "weight*": "weights_only"), which outweigh the word itself: each word is asked
     for whole as well, ten times heavier ("class^10 class"). The words are in the index's form
     already, so lunr's query pipeline, which would stem them again ("precis" -> "preci"), is emptied.
   - The heading that is the term first. Material turns lunr's length normalisation off (b = 0), so
     the heading "Mixed precision" weighs no more than "Mixed precision: BCELoss under autocast"; a
     little of it (b = 0.2) puts the shorter heading first (and weighs a long section's words a
     little less).
   - A page in the results whose sections matched, but not its own first entry, gets their words,
     so that its link highlights them (Material links it with "?h=" empty). */
(function () {
  var config = null, chinese = new Set(), longest = 1;
  var listen = self.addEventListener, post = self.postMessage;

  function cut(run) {
    var words = [];
    for (var i = 0, j; i < run.length; i = j) {
      for (j = Math.min(run.length, i + longest); j > i + 1 && !chinese.has(run.slice(i, j)); j--);
      var word = run.slice(i, j), last = words.length - 1;
      if (last >= 0 && !chinese.has(word) && !chinese.has(words[last])) words[last] += word;  // still being typed
      else words.push(word);
    }
    return words;
  }

  function rewrite(query) {
    var english = config.lang.indexOf("en") !== -1, separator = new RegExp(config.separator);
    var stop = english ? lunr.stopWordFilter : lunr.zh && lunr.zh.stopWordFilter, terms = [];
    query.split(/\s+/).filter(Boolean).forEach(function (typed) {
      if (/^[+-]|^\w+:\S|[\^~*"]/.test(typed)) return terms.push(typed);  // lunr's syntax: as typed
      typed.toLowerCase().split(separator).join(" ").replace(/\p{sc=Han}+/gu, function (run) {
        return " " + cut(run).join(" ") + " ";
      }).split(/\s+/).filter(Boolean).forEach(function (word) {
        var token = new lunr.Token(word);
        if (stop && !stop(token)) return;
        if (english && /[a-z]{3}/.test(word)) word = lunr.stemmer(token).toString();
        terms.push(word + "^10", word);
      });
    });
    return terms.length ? terms.join(" ") : query;
  }

  function linkWords(groups) {
    groups.forEach(function (group) {
      var page = group.find(function (doc) { return doc.location.indexOf("#") === -1; });
      if (page) group.forEach(function (doc) {
        for (var term in doc.terms) if (doc.terms[term]) page.terms[term] = true;
      });
    });
  }

  self.addEventListener = function (type, listener, options) {
    if (type !== "message") return listen.call(self, type, listener, options);
    return listen.call(self, type, function (event) {
      var message = event.data;
      if (message && message.type === 0 && message.data) config = message.data.config;
      if (message && message.type === 2 && typeof message.data === "string" && config)
        return listener.call(this, {data: {type: 2, data: rewrite(message.data)}});
      return listener.call(this, event);
    }, options);
  };
  self.postMessage = function (message) {
    if (message && message.type === 3 && message.data && message.data.items) linkWords(message.data.items);
    return post.apply(self, arguments);
  };

  importScripts("MATERIAL_WORKER");

  var build = lunr.Builder.prototype.build;
  lunr.Builder.prototype.build = function () {
    this.b(0.2);
    var index = build.call(this);
    Object.keys(index.invertedIndex).forEach(function (term) {
      if (/^\p{sc=Han}+$/u.test(term)) chinese.add(term), longest = Math.max(longest, term.length);
    });
    index.invertedIndex = new Proxy(index.invertedIndex, {has: function () { return false; }});
    index.pipeline = new lunr.Pipeline();
    return index;
  };
})();

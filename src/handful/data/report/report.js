// The sample browser. Model text is only ever set through textContent.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("samples-data").textContent);
  var list = document.getElementById("samples");
  if (!list) return;
  // One page of cards at a time: a run's hundreds of samples would make the page tens of
  // thousands of pixels tall. Filters and search apply to all of them; paging keeps the filters.
  var PAGE = 20, page = 0;
  var run = document.getElementById("f-run"), bench = document.getElementById("f-bench");
  var verdict = document.getElementById("f-verdict"), query = document.getElementById("f-query"), count = document.getElementById("f-count");
  var prev = document.getElementById("f-prev"), next = document.getElementById("f-next"), where = document.getElementById("f-page");

  function fill(select, values) {
    values.forEach(function (v) {
      var o = document.createElement("option");
      o.value = v; o.textContent = v; select.appendChild(o);
    });
  }
  function unique(key) {
    var seen = {};
    data.forEach(function (d) { seen[d[key]] = true; });
    return Object.keys(seen).sort();
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function card(d) {
    var box = el("article", "sample " + (d.correct ? "correct" : "incorrect"));
    box.setAttribute("data-testid", "sample");
    box.appendChild(el("div", "meta", d.run + " | " + d.benchmark + " | " + d.id + " #" + d.i + " | " + (d.correct ? "correct" : "incorrect") +
      " (" + d.outcome + ") | answer " + (d.extracted === null ? "none" : d.extracted) + ", reference " + d.gold +
      " | " + d.tokens + " tokens, " + d.finish));
    box.appendChild(el("p", "question", d.question));
    if (d.thinking !== null && d.thinking !== undefined) {
      var fold = el("details", "thinking");
      fold.appendChild(el("summary", null, "thinking (" + d.thinking_tokens + " tokens)"));
      fold.appendChild(el("pre", null, d.thinking));
      box.appendChild(fold);
    }
    box.appendChild(el("pre", "answer", d.answer));
    return box;
  }
  function matches(d, q) {
    if (run.value && d.run !== run.value) return false;
    if (bench.value && d.benchmark !== bench.value) return false;
    if (verdict.value === "correct" && !d.correct) return false;
    if (verdict.value === "incorrect" && d.correct) return false;
    return !q || (d.question + "\n" + (d.thinking || "") + "\n" + d.answer + "\n" + d.id).toLowerCase().indexOf(q) >= 0;
  }
  function render() {
    var q = query.value.toLowerCase();
    var found = data.filter(function (d) { return matches(d, q); });
    var pages = Math.max(1, Math.ceil(found.length / PAGE));
    page = Math.min(page, pages - 1);
    list.textContent = "";
    found.slice(page * PAGE, (page + 1) * PAGE).forEach(function (d) { list.appendChild(card(d)); });
    count.textContent = found.length + " samples";
    where.textContent = found.length ? "samples " + (page * PAGE + 1) + "-" + Math.min((page + 1) * PAGE, found.length) +
      " of " + found.length + " (page " + (page + 1) + " of " + pages + ")" : "";
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  }
  function refilter() { page = 0; render(); }
  fill(run, unique("run"));
  fill(bench, unique("benchmark"));
  [run, bench, verdict].forEach(function (s) { s.addEventListener("change", refilter); });
  query.addEventListener("input", refilter);
  prev.addEventListener("click", function () { page -= 1; render(); window.scrollTo(0, list.offsetTop); });
  next.addEventListener("click", function () { page += 1; render(); window.scrollTo(0, list.offsetTop); });
  render();
})();

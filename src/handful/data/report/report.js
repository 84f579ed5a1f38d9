// The sample browser. Model text is only ever set through textContent.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("samples-data").textContent);
  var list = document.getElementById("samples");
  if (!list) return;
  var LIMIT = 200;
  var run = document.getElementById("f-run"), bench = document.getElementById("f-bench");
  var verdict = document.getElementById("f-verdict"), query = document.getElementById("f-query"), count = document.getElementById("f-count");

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
  function render() {
    var q = query.value.toLowerCase(), shown = 0;
    list.textContent = "";
    data.forEach(function (d) {
      if (run.value && d.run !== run.value) return;
      if (bench.value && d.benchmark !== bench.value) return;
      if (verdict.value === "correct" && !d.correct) return;
      if (verdict.value === "incorrect" && d.correct) return;
      if (q && (d.question + "\n" + (d.thinking || "") + "\n" + d.answer + "\n" + d.id).toLowerCase().indexOf(q) < 0) return;
      if (shown < LIMIT) list.appendChild(card(d));
      shown += 1;
    });
    count.textContent = shown + " samples" + (shown > LIMIT ? " (the first " + LIMIT + " shown)" : "");
  }
  fill(run, unique("run"));
  fill(bench, unique("benchmark"));
  [run, bench, verdict].forEach(function (s) { s.addEventListener("change", render); });
  query.addEventListener("input", render);
  render();
})();

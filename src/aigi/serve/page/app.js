// aigi web page: send the chosen images to /v1/detect and show one card per image.
(function () {
  "use strict";
  const drop = document.getElementById("drop");
  const input = document.getElementById("files");
  const results = document.getElementById("results");
  const status = document.getElementById("status");
  const budget = document.getElementById("budget");

  // the stored operating points become choices: "flag at most 1 % of real photos"
  fetch("/v1/detectors").then(function (r) { return r.ok ? r.json() : null; }).then(function (info) {
    const table = info && info.detectors[0].operating_points;
    if (!table || !table.points.length) return;
    table.points.forEach(function (pt) {
      const option = el("option", "", "flagging at most " + (100 * pt.max_fpr).toFixed(1) + " % of real photos");
      option.value = String(pt.max_fpr);
      budget.appendChild(option);
    });
    document.getElementById("strictness").hidden = false;
  }).catch(function () { /* the page still scores at the detector's threshold */ });

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function pct(p) { return (100 * p).toFixed(1) + " %"; }

  function bar(p, threshold, verdict) {
    const outer = el("div", "bar");
    const fill = el("div", "fill " + (verdict || "neutral"));
    fill.style.width = Math.max(1.5, 100 * p) + "%";
    outer.appendChild(fill);
    if (threshold !== undefined) {
      const tick = el("div", "tick");
      tick.style.left = "calc(" + (100 * threshold) + "% - 1px)";
      tick.title = "threshold " + pct(threshold);
      outer.appendChild(tick);
    }
    outer.setAttribute("role", "meter");
    outer.setAttribute("aria-valuemin", "0");
    outer.setAttribute("aria-valuemax", "1");
    outer.setAttribute("aria-valuenow", String(p));
    return outer;
  }

  function card(file, rec) {
    const box = el("article", "result");
    if (rec.error) {
      box.appendChild(el("div", "thumb placeholder", "?"));
    } else {
      const img = el("img", "thumb");
      img.alt = file.name;
      img.src = URL.createObjectURL(file);
      box.appendChild(img);
    }
    const body = el("div", "body");
    const head = el("div", "head");
    head.appendChild(el("span", "name", file.name));
    if (rec.error) {
      head.appendChild(el("span", "verdict error", "Not scored"));
      body.appendChild(head);
      body.appendChild(el("div", "errortext", rec.error));
    } else {
      const fake = rec.verdict === "fake";
      head.appendChild(el("span", "verdict " + rec.verdict, fake ? "Likely AI-generated" : "Likely real"));
      body.appendChild(head);
      body.appendChild(bar(rec.prob_fake, rec.threshold, rec.verdict));
      const meta = el("div", "meta");
      const left = el("span");
      left.appendChild(document.createTextNode("P(fake) "));
      left.appendChild(el("span", "prob", pct(rec.prob_fake)));
      meta.appendChild(left);
      meta.appendChild(el("span", "", "threshold " + pct(rec.threshold) + " · " + rec.detector));
      body.appendChild(meta);
      if (rec.experts) {  // folded away: the vote is the answer, the experts are the evidence
        const names = Object.keys(rec.experts);
        const fold = el("details", "experts-fold");
        fold.appendChild(el("summary", "", names.length + " expert scores"));
        const list = el("div", "experts");
        names.forEach(function (name) {
          const row = el("div", "expert");
          row.appendChild(el("span", "", name));
          row.appendChild(bar(rec.experts[name]));
          row.appendChild(el("span", "", pct(rec.experts[name])));
          list.appendChild(row);
        });
        fold.appendChild(list);
        body.appendChild(fold);
      }
    }
    box.appendChild(body);
    box.dataset.verdict = rec.error ? "error" : rec.verdict;
    return box;
  }

  async function score(files) {
    files = Array.from(files).filter(function (f) { return f.size > 0; });
    if (!files.length) return;
    status.textContent = "Scoring " + files.length + (files.length === 1 ? " image…" : " images…");
    const form = new FormData();
    files.forEach(function (f) { form.append("files", f, f.name); });
    let data;
    try {
      const query = budget.value ? "?max_fpr=" + encodeURIComponent(budget.value) : "";
      const response = await fetch("/v1/detect" + query, { method: "POST", body: form });
      data = await response.json();
      if (!response.ok && !data.results) throw new Error(data.error ? data.error.message : response.statusText);
    } catch (err) {
      status.textContent = "Could not score: " + err.message;
      return;
    }
    const recs = data.results || [];
    for (let i = recs.length - 1; i >= 0; i--) results.prepend(card(files[i], recs[i]));  // newest first, in order
    const scored = recs.filter(function (r) { return !r.error; }).length;
    status.textContent = scored + " of " + recs.length + " scored.";
  }

  input.addEventListener("change", function () { score(input.files); input.value = ""; });
  ["dragenter", "dragover"].forEach(function (ev) {
    drop.addEventListener(ev, function (e) { e.preventDefault(); drop.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (ev) {
    drop.addEventListener(ev, function (e) { e.preventDefault(); drop.classList.remove("over"); });
  });
  drop.addEventListener("drop", function (e) { score(e.dataTransfer.files); });
  drop.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") input.click(); });
})();

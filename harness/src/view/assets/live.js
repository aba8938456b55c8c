"use strict";
// The live page: the run's seconds arrive as server-sent events.
(() => {
  const $ = (id) => document.getElementById(id);
  const esc = LT.esc, fmt = LT.fmt;
  let hello = null, last = null, done = false, pending = false;
  let S = null;
  const fresh = () => ({ x: [], rps: [], fail: [], vus: [], p50: [], p95: [], p99: [], req: {} });

  const state = (s, text) => { document.body.dataset.state = s; $("status").textContent = text; };
  const table = (head, rows) =>
    `<table><tr>${head.map((h, i) => `<th${i ? "" : ' class="l"'}>${h}</th>`).join("")}</tr>` +
    rows.map((r) => `<tr>${r.map((c, i) => `<td${i ? "" : ' class="l"'}>${c}</td>`).join("")}</tr>`).join("") + "</table>";

  function draw() {
    pending = false;
    if (!last || !S) return;
    const T = last.total, w = last.window;
    $("t-elapsed").textContent = LT.clock(last.x + 1);
    $("t-vus").textContent = w.vus;
    $("t-rps").textContent = fmt(w.requests / (w.span_s || 1));
    $("t-requests").textContent = T.requests;
    $("t-failed").textContent = T.requests ? ((T.failures * 100) / T.requests).toFixed(2) + "%" : "-";
    $("t-p95").textContent = T.p95 == null ? "-" : fmt(T.p95) + " ms";
    const cp = T.checks.reduce((a, c) => a + c[0], 0), cf = T.checks.reduce((a, c) => a + c[1], 0);
    $("t-checks").textContent = cp + cf ? ((cp * 100) / (cp + cf)).toFixed(2) + "%" : "-";
    if (hello && hello.planned_s > 0) $("bar").style.width = Math.min(100, ((last.x + 1) * 100) / hello.planned_s) + "%";
    LT.line($("c-rps"), { series: [{ name: "req/s", xs: S.x, ys: S.rps }, { name: "failed/s", xs: S.x, ys: S.fail, color: "#dc2626" }], xFormat: LT.clock });
    LT.line($("c-lat"), { series: [["p50", S.p50], ["p95", S.p95], ["p99", S.p99]].map(([n, ys]) => ({ name: n, xs: S.x, ys })), xFormat: LT.clock, yUnit: " ms" });
    LT.line($("c-req"), { series: Object.entries(S.req).map(([name, ys]) => ({ name, xs: S.x, ys })), xFormat: LT.clock, yUnit: " ms" });
    LT.line($("c-vus"), { series: [{ name: "VUs", xs: S.x, ys: S.vus, color: "#7c3aed" }], xFormat: LT.clock });
    $("requests").outerHTML = `<div id="requests">` + table(["request", "requests", "failed", "p50 ms", "p95 ms", "p99 ms"],
      T.by_request.map((r) => [esc(r.name), r.requests, r.failures ? `<span class="bad">${r.failures}</span>` : "0", fmt(r.p50), fmt(r.p95), fmt(r.p99)])) + "</div>";
    if (T.thresholds.length)
      $("thresholds").innerHTML = table(["threshold", "value", "now"], T.thresholds.map((t) =>
        [`<code>${esc(t.threshold)}</code>`, t.value == null ? "no data" : fmt(t.value), t.ok == null ? '<span class="muted">no data</span>' : t.ok ? '<span class="ok">holds</span>' : '<span class="bad">crossed</span>']));
    if (hello && hello.checks.length)
      $("checks").innerHTML = table(["check", "request", "passes", "fails"], hello.checks.map((c, i) => {
        const [p, f] = T.checks[i] || [0, 0];
        return [esc(c.name), esc(c.request), p, f ? `<span class="bad">${f}</span>` : "0"];
      }));
    $("errors").innerHTML = T.errors.length ? table(["error", "count"], T.errors.map((e) => [esc(e.error), e.count])) : '<p class="muted">None so far.</p>';
  }
  const later = () => { if (!pending) { pending = true; setTimeout(draw, 0); } };

  // A/B: trials as they complete, A beside B.
  const AB = { trials: [], verdict: null };
  function drawAb() {
    const side = (sd, key) => {
      const t = AB.trials.filter((x) => x.side === sd);
      return { name: sd === "A" ? `A (${hello.base})` : `B (${hello.head})`, xs: t.map((x) => x.index), ys: t.map((x) => x[key]), color: sd === "A" ? "#2563eb" : "#d97706" };
    };
    const idx = (v) => "#" + Math.round(v);
    LT.line($("c-ab-rps"), { series: [side("A", "rps"), side("B", "rps")], dots: true, xInteger: true, xFormat: idx });
    LT.line($("c-ab-p95"), { series: [side("A", "p95"), side("B", "p95")], dots: true, xInteger: true, xFormat: idx, yUnit: " ms" });
    $("ab-done").textContent = AB.trials.length;
    $("ab-trials").innerHTML = table(["trial", "side", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms"],
      AB.trials.map((t) => [t.index, t.side, t.requests, fmt(t.rps), fmt(t.p50), fmt(t.p95), fmt(t.p99)]));
    if (AB.verdict) {
      $("ab-outcome").textContent = AB.verdict.outcome;
      $("ab-verdict").innerHTML = table(["metric", "verdict", "decision"], AB.verdict.metrics.map((m) =>
        [esc(m.scope + " " + m.metric) + (m.gate ? ' <span class="muted">(gate)</span>' : ""), esc(m.sentence), m.decision === "worse" ? `<span class="bad">${m.decision}</span>` : esc(m.decision)]));
      const w = AB.verdict.where || { findings: [], examined: [] };
      if (w.examined.length || w.database) {
        $("ab-where").innerHTML = (w.findings.length
          ? "<ul>" + w.findings.map((f) => `<li class="warn">${esc(f)}</li>`).join("") + "</ul>"
          : `<p>Nothing moved beyond noise (${w.examined.length} figures examined: ${esc(w.examined.join(", "))}).</p>`)
          + (w.database ? `<p class="muted">${esc(w.database)}</p>` : "")
          + (w.reach ? `<p class="muted">${esc(w.reach)}</p>` : "");
      }
    }
    if (hello.max_trials) $("bar").style.width = Math.min(100, (AB.trials.length * 100) / hello.max_trials) + "%";
  }

  const es = new EventSource("/events");
  es.addEventListener("hello", (e) => {
    hello = JSON.parse(e.data);
    S = fresh();
    AB.trials = []; AB.verdict = null;
    if (hello.kind === "ab") {
      $("run").hidden = true; $("ab").hidden = false;
      $("title").textContent = `${hello.scenario} · A/B ${hello.base} vs ${hello.head}`;
      $("meta").textContent = `${hello.trial_s} s trials, ${hello.min_trials} to ${hello.max_trials}`;
      state("running", "running");
      return;
    }
    for (const n of hello.requests) S.req[n] = [];
    $("title").textContent = `${hello.scenario} · ${hello.run}`;
    $("meta").textContent = `target ${hello.target}`;
    state("running", "running");
  });
  es.addEventListener("window", (e) => {
    const d = JSON.parse(e.data), w = d.window, span = w.span_s || 1;
    S.x.push(d.x); S.rps.push(w.requests / span); S.fail.push(w.failures / span); S.vus.push(w.vus);
    S.p50.push(w.p50); S.p95.push(w.p95); S.p99.push(w.p99);
    for (const n in S.req) S.req[n].push(w.by_request[n] ? w.by_request[n].p95 : null);
    last = d;
    later();
  });
  es.addEventListener("trial", (e) => { AB.trials.push(JSON.parse(e.data)); drawAb(); });
  es.addEventListener("verdict", (e) => { AB.verdict = JSON.parse(e.data); drawAb(); });
  es.addEventListener("done", (e) => {
    es.close();
    done = true;
    const d = JSON.parse(e.data);
    state("done", d.interrupted ? "stopped" : "finished");
    $("stop").disabled = true;
    $("bar").style.width = "100%";
    const cls = d.code === 0 ? "ok" : d.code === 98 || d.code === 99 ? "bad" : "warn";
    $("banner").innerHTML = `<div class="banner ${cls}">${esc(d.message)} Exit code ${d.code}.</div>`;
    // Blobs keep the downloads working after the harness has exited.
    $("downloads").innerHTML = d.files.length ? "Download: " : "";
    for (const f of d.files) {
      const a = document.createElement("a");
      a.href = URL.createObjectURL(new Blob([f.text], { type: f.name.endsWith(".json") ? "application/json" : "text/csv" }));
      a.download = f.name;
      a.textContent = f.name;
      $("downloads").append(a);
    }
    if (hello && hello.kind === "ab") drawAb(); else draw();
  });
  es.onerror = () => { if (!done) state(document.body.dataset.state === "connecting" ? "connecting" : "lost", "connection lost: retrying"); };
  $("stop").addEventListener("click", async () => {
    $("stop").disabled = true;
    state("stopping", "stopping… (results are being written)");
    try {
      const r = await fetch("/stop", { method: "POST" });
      if (!r.ok) throw new Error("status " + r.status);
    } catch (err) {
      $("stop").disabled = false;
      state("running", "could not stop: " + err.message);
    }
  });
})();

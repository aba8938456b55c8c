"use strict";
// Draws the report's charts from the data embedded in the page.
(() => {
  const D = JSON.parse(document.getElementById("data").textContent);
  const show = (id, o) => { const host = document.getElementById(id); if (host) LT.line(host, o); };
  if (D.kind === "run") {
    const T = D.timeline, B = D.baseline_timeline;
    const rps = [{ name: "all requests", xs: T.x, ys: T.rps }];
    for (const [name, r] of Object.entries(T.requests)) if (Object.keys(T.requests).length > 1) rps.push({ name, xs: T.x, ys: r.rps });
    rps.push({ name: "failed/s", xs: T.x, ys: T.failures, color: "#dc2626" });
    if (B) rps.push({ name: "baseline: all requests", xs: B.x, ys: B.rps, dash: true, color: "#9ca3af" });
    show("c-rps", { series: rps, xFormat: LT.clock });
    const lat = [["p50", T.p50], ["p95", T.p95], ["p99", T.p99]].map(([n, ys]) => ({ name: n, xs: T.x, ys }));
    if (B) lat.push({ name: "baseline p95", xs: B.x, ys: B.p95, dash: true, color: "#9ca3af" });
    show("c-lat", { series: lat, xFormat: LT.clock, yUnit: " ms" });
    show("c-req", { series: Object.entries(T.requests).map(([name, r]) => ({ name, xs: T.x, ys: r.p95 })), xFormat: LT.clock, yUnit: " ms" });
    show("c-vus", { series: [{ name: "VUs", xs: T.x, ys: T.vus, color: "#7c3aed" }], xFormat: LT.clock });
    // A request keeps its colour in both runs; the baseline's line is dashed.
    const key = (n) => (n.includes(": ") ? n.slice(n.indexOf(": ") + 2) : n);
    const order = [...new Set(D.distribution.map((s) => key(s.name)))];
    for (const s of D.distribution) s.color = LT.COLORS[order.indexOf(key(s.name)) % LT.COLORS.length];
    show("c-dist", { series: D.distribution, xTicks: LT.NINES, xFormat: LT.nines, yUnit: " ms", yLog: true, height: 300 });
  } else {
    const side = (s, key) => {
      const t = D.trials.filter((x) => x.side === s);
      return { name: s === "A" ? `A (${D.base})` : `B (${D.head})`, xs: t.map((x) => x.index), ys: t.map((x) => x[key]), color: s === "A" ? "#2563eb" : "#d97706" };
    };
    show("c-ab-rps", { series: [side("A", "rps"), side("B", "rps")], dots: true, xInteger: true, xFormat: (v) => "#" + Math.round(v) });
    show("c-ab-p95", { series: [side("A", "p95"), side("B", "p95")], dots: true, xInteger: true, xFormat: (v) => "#" + Math.round(v), yUnit: " ms" });
  }
})();

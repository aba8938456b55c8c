"use strict";
// Small SVG line charts for the report and the live page: drawn here, nothing fetched.
const LT = (() => {
  const NS = "http://www.w3.org/2000/svg";
  // Red is kept for failures.
  const COLORS = ["#2563eb", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563", "#65a30d"];

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  // Round steps (1, 2, 5 x 10^k) covering [lo, hi] in about n steps.
  // With `cover`, the last step reaches past hi (a y axis); else the steps stay inside (an x axis).
  function ticks(lo, hi, n, cover) {
    if (!(hi > lo)) hi = lo + 1;
    const raw = (hi - lo) / n;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const out = [];
    const end = cover ? Math.ceil(hi / step - 1e-9) * step : hi;
    for (let v = Math.ceil(lo / step - 1e-9) * step; v <= end + step * 1e-9; v += step) out.push(+v.toFixed(10));
    return out;
  }

  function fmt(v) {
    if (v == null || !isFinite(v)) return "-";
    const a = Math.abs(v);
    if (a >= 10000) return (v / 1000).toFixed(0) + "k";
    if (a >= 1000) return (v / 1000).toFixed(1) + "k";
    if (a >= 100) return v.toFixed(0);
    if (a >= 10) return v.toFixed(1);
    if (a === 0) return "0";
    return v.toPrecision(2);
  }

  function clock(s) {
    s = Math.round(s);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const two = (x) => String(x).padStart(2, "0");
    return h ? `${h}:${two(m)}:${two(r)}` : `${m}:${two(r)}`;
  }

  // At most `max` points: long runs are drawn per bucket (its highest value, so spikes stay visible).
  function thin(xs, ys, max) {
    if (xs.length <= max) return [xs, ys];
    const per = Math.ceil(xs.length / max), ox = [], oy = [];
    for (let i = 0; i < xs.length; i += per) {
      let best = null;
      for (let j = i; j < Math.min(i + per, xs.length); j++) if (ys[j] != null && (best == null || ys[j] > best)) best = ys[j];
      ox.push(xs[i]);
      oy.push(best);
    }
    return [ox, oy];
  }

  // o: {series: [{name, xs, ys, color, dash}], xFormat, yUnit, xTicks: [[value, label]], dots, height}
  function line(host, o) {
    host.textContent = "";
    host.classList.add("chart-host");
    // Drawn at the size shown, so the text keeps its size on wide screens.
    const W = Math.max(360, Math.round(host.clientWidth || 640)), H = o.height || 230, m = { l: 56, r: 14, t: 10, b: 28 };
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" }, host);
    const series = (o.series || []).map((s, i) => {
      const [xs, ys] = thin(s.xs, s.ys, 1200);
      return Object.assign({}, s, { xs, ys, color: s.color || COLORS[i % COLORS.length] });
    });
    let x0 = Infinity, x1 = -Infinity, y1 = 0;
    for (const s of series)
      s.xs.forEach((x, i) => {
        const y = s.ys[i];
        if (y == null || !isFinite(y)) return;
        x0 = Math.min(x0, x); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
      });
    if (!isFinite(x0)) {
      el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, svg).textContent = o.empty || "no data yet";
      return svg;
    }
    if (x1 === x0) x1 = x0 + 1;
    const X = (x) => m.l + ((x - x0) / (x1 - x0)) * (W - m.l - m.r);
    let yt, Y;
    if (o.yLog) {
      // Log scale (latency by percentile): the body and the tail both stay readable.
      let lo = Infinity;
      for (const s of series) for (const y of s.ys) if (y > 0 && y < lo) lo = y;
      if (!(lo < Infinity)) lo = y1 > 0 ? y1 : 1;
      const steps = [];
      for (let k = Math.floor(Math.log10(lo)) - 1; k <= Math.ceil(Math.log10(Math.max(y1, lo))) + 1; k++)
        for (const f of [1, 2, 5]) steps.push(+(f * Math.pow(10, k)).toPrecision(3));
      const bottom = steps.filter((v) => v <= lo).pop(), top = steps.find((v) => v >= y1);
      yt = steps.filter((v) => v >= bottom && v <= top);
      const la = Math.log10(bottom), lb = Math.log10(top) > la ? Math.log10(top) : la + 1;
      Y = (y) => H - m.b - ((Math.log10(Math.max(y, bottom)) - la) / (lb - la)) * (H - m.t - m.b);
    } else {
      yt = ticks(0, y1 > 0 ? y1 : 1, 4, true);
      const top = yt[yt.length - 1];
      Y = (y) => H - m.b - (y / top) * (H - m.t - m.b);
    }
    const grid = el("g", { class: "grid" }, svg);
    for (const v of yt) {
      el("line", { x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v) }, grid);
      el("text", { x: m.l - 6, y: Y(v) + 4, "text-anchor": "end" }, grid).textContent = fmt(v) + (o.yUnit || "");
    }
    // Time axes step by whole seconds at least.
    const xt = o.xTicks
      ? o.xTicks.filter((t) => t[0] >= x0 - 1e-9 && t[0] <= x1 + 1e-9)
      : ticks(x0, x1, 6).filter((v) => (o.xFormat !== clock && !o.xInteger) || Number.isInteger(v)).map((v) => [v, (o.xFormat || fmt)(v)]);
    for (const [v, label] of xt) {
      el("line", { x1: X(v), x2: X(v), y1: m.t, y2: H - m.b, class: "x" }, grid);
      el("text", { x: X(v), y: H - m.b + 16, "text-anchor": "middle" }, grid).textContent = label;
    }
    for (const s of series) {
      let d = "", pen = false;
      s.xs.forEach((x, i) => {
        const y = s.ys[i];
        if (y == null || !isFinite(y)) { pen = false; return; }
        d += (pen ? "L" : "M") + X(x).toFixed(1) + " " + Y(y).toFixed(1);
        pen = true;
      });
      const p = el("path", { d, class: "series", stroke: s.color, "data-name": s.name }, svg);
      if (s.dash) p.setAttribute("stroke-dasharray", "6 4");
      if (o.dots)
        s.xs.forEach((x, i) => {
          if (s.ys[i] != null) el("circle", { cx: X(x), cy: Y(s.ys[i]), r: 3.5, fill: s.color, class: "dot" }, svg);
        });
    }
    const legend = document.createElement("div");
    legend.className = "legend";
    for (const s of series) {
      const item = document.createElement("span");
      const key = document.createElement("i");
      key.style.background = s.color;
      if (s.dash) key.className = "dash";
      item.append(key, document.createTextNode(s.name));
      legend.append(item);
    }
    host.append(legend);
    // The values under the pointer, at the nearest x.
    const tip = document.createElement("div");
    tip.className = "tip";
    host.append(tip);
    const cursor = el("line", { class: "cursor", y1: m.t, y2: H - m.b, visibility: "hidden" }, svg);
    svg.addEventListener("mousemove", (ev) => {
      const r = svg.getBoundingClientRect();
      const px = ((ev.clientX - r.left) / r.width) * W;
      const x = x0 + ((px - m.l) / (W - m.l - m.r)) * (x1 - x0);
      let best = null;
      for (const s of series) for (const sx of s.xs) if (best == null || Math.abs(sx - x) < Math.abs(best - x)) best = sx;
      if (best == null) return;
      cursor.setAttribute("x1", X(best)); cursor.setAttribute("x2", X(best));
      cursor.setAttribute("visibility", "visible");
      const rows = series.map((s) => {
        const i = s.xs.indexOf(best);
        return i < 0 || s.ys[i] == null ? "" : `<div><i style="background:${s.color}"></i>${esc(s.name)}: <b>${fmt(s.ys[i])}${o.yUnit || ""}</b></div>`;
      });
      tip.innerHTML = `<div class="at">${esc((o.xFormat || fmt)(best))}</div>` + rows.join("");
      tip.style.display = "block";
    });
    svg.addEventListener("mouseleave", () => { tip.style.display = "none"; cursor.setAttribute("visibility", "hidden"); });
    return svg;
  }

  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  // Percentile axis: x = -log10(1 - q), so 90%, 99%, 99.9% are evenly spaced.
  const NINES = [[0, "0%"], [0.30103, "50%"], [1, "90%"], [2, "99%"], [3, "99.9%"], [4, "99.99%"], [5, "99.999%"]];
  function nines(x) {
    const q = 1 - Math.pow(10, -x);
    return (q * 100).toFixed(x < 2 ? 0 : Math.ceil(x) - 1) + "%";
  }

  return { line, fmt, clock, esc, NINES, nines, COLORS };
})();

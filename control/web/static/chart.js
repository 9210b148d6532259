// A small SVG line chart with hover: nearest iteration, each series' value there.
"use strict";

const chart = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"];

  function svg(tag, attrs) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }

  function ticks(lo, hi, n) {
    const span = hi - lo || 1;
    const step = Math.pow(10, Math.floor(Math.log10(span / n)));
    const best = [1, 2, 5, 10].map((m) => m * step).find((s) => span / s <= n) || step * 10;
    const out = [];
    for (let v = Math.ceil(lo / best) * best; v <= hi + 1e-9; v += best) out.push(v);
    return out;
  }

  // series: [{name, points: [[x, y], ...]}]; opts: {title, width, height, boundaries, format}
  function line(host, series, opts = {}) {
    const W = opts.width || 720, H = opts.height || 260;
    const pad = { l: 52, r: 12, t: 22, b: 30 };
    const fmt = opts.format || ((v) => v.toFixed(4));
    host.replaceChildren();
    host.classList.add("chart");
    const xs = series.flatMap((s) => s.points.map((p) => p[0]));
    const ys = series.flatMap((s) => s.points.map((p) => p[1])).filter((v) => v !== null && isFinite(v));
    const root = svg("svg", { width: W, height: H, role: "img" });
    const title = svg("text", { x: pad.l, y: 15, "font-size": 13, "font-weight": 600 });
    title.textContent = opts.title || "";
    root.append(title);
    host.append(root);
    if (!xs.length || !ys.length) {
      const t = svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#889" });
      t.textContent = "no points yet";
      root.append(t);
      return;
    }
    let [x0, x1] = [Math.min(...xs, 0), Math.max(...xs)];
    let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
    const X = (v) => pad.l + ((v - x0) / (x1 - x0)) * (W - pad.l - pad.r);
    const Y = (v) => H - pad.b - ((v - y0) / (y1 - y0)) * (H - pad.t - pad.b);
    for (const v of ticks(y0, y1, 5)) {
      root.append(svg("line", { x1: pad.l, x2: W - pad.r, y1: Y(v), y2: Y(v), stroke: "#eef0f3" }));
      const t = svg("text", { x: pad.l - 4, y: Y(v) + 4, "text-anchor": "end", "font-size": 11 });
      t.textContent = +v.toPrecision(6);
      root.append(t);
    }
    for (const v of ticks(x0, x1, 8)) {
      const t = svg("text", { x: X(v), y: H - 10, "text-anchor": "middle", "font-size": 11 });
      t.textContent = v;
      root.append(t);
    }
    for (const b of opts.boundaries || []) {
      root.append(svg("line", { x1: X(b), x2: X(b), y1: pad.t, y2: H - pad.b, stroke: "#99a", "stroke-dasharray": "4 3" }));
    }
    series.forEach((s, i) => {
      const color = s.color || COLORS[i % COLORS.length];
      const d = s.points.filter((p) => p[1] !== null && isFinite(p[1]))
        .map((p, j) => (j ? "L" : "M") + X(p[0]).toFixed(1) + "," + Y(p[1]).toFixed(1)).join("");
      root.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 1.6 }));
      const key = svg("text", { x: W - pad.r - 4, y: pad.t + 14 * i + 10, "text-anchor": "end", "font-size": 11, fill: color });
      key.textContent = gradq.visible(s.name);
      root.append(key);
    });
    const cursor = svg("line", { y1: pad.t, y2: H - pad.b, stroke: "#445", visibility: "hidden" });
    root.append(cursor);
    const tip = document.createElement("div");
    tip.className = "tip";
    host.append(tip);
    root.addEventListener("mousemove", (ev) => {
      const box = root.getBoundingClientRect();
      const at = x0 + ((ev.clientX - box.left - pad.l) / (W - pad.l - pad.r)) * (x1 - x0);
      const lines = [];
      let nearest = null;
      for (const s of series) {
        let best = null;
        for (const p of s.points) if (best === null || Math.abs(p[0] - at) < Math.abs(best[0] - at)) best = p;
        if (best === null) continue;
        nearest = nearest === null || Math.abs(best[0] - at) < Math.abs(nearest - at) ? best[0] : nearest;
        lines.push([gradq.visible(s.name), best]);
      }
      if (nearest === null) return;
      const text = lines.map(([name, p]) =>
        name + ": " + (p[1] === null ? "-" : fmt(p[1])) + (p[0] !== nearest ? "  (it " + p[0] + ")" : ""));
      cursor.setAttribute("x1", X(nearest));
      cursor.setAttribute("x2", X(nearest));
      cursor.setAttribute("visibility", "visible");
      tip.textContent = "iteration " + nearest + "\n" + text.join("\n");
      tip.style.display = "block";
      tip.style.left = Math.min(X(nearest) + 10, W - 170) + "px";
      tip.style.top = pad.t + 4 + "px";
    });
    root.addEventListener("mouseleave", () => {
      tip.style.display = "none";
      cursor.setAttribute("visibility", "hidden");
    });
  }

  return { line, COLORS };
})();

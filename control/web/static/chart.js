// A small SVG line chart: hover shows each series' value at the nearest iteration; a log scale
// for the y-axis, drag across to zoom on iterations (double-click shows them all again; ◀ ▶ pan
// the zoomed window), the legend beside the plot, redrawn at the page's width, and the curve as
// CSV or the chart as SVG or PNG.
// The x-axis is iterations or wall time: a point is [iteration, value, at] where `at` is the
// database's time it was written (ISO text; null for points stored before gradq kept it).
"use strict";

const chart = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"];
  const NAME = 28;  // legend names longer than this are cut; the whole name is in its tooltip

  function svg(tag, attrs) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  }

  function text(attrs, words) {
    const t = svg("text", attrs);
    t.textContent = words;
    return t;
  }

  function ticks(lo, hi, n) {
    const span = hi - lo || 1;
    const step = Math.pow(10, Math.floor(Math.log10(span / n)));
    const best = [1, 2, 5, 10].map((m) => m * step).find((s) => span / s <= n) || step * 10;
    const out = [];
    for (let v = Math.ceil(lo / best) * best; v <= hi + 1e-9; v += best) out.push(v);
    return out;
  }

  // Ticks of a log axis, given log10 of its ends: 1, 2, 5 of each decade (only 1 over many).
  function logTicks(lo, hi) {
    const marks = hi - lo > 3 ? [1] : [1, 2, 5];
    const out = [];
    for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) {
      for (const m of marks) {
        const v = e + Math.log10(m);
        if (v >= lo - 1e-9 && v <= hi + 1e-9) out.push(v);
      }
    }
    return out.length >= 2 ? out : ticks(lo, hi, 4);
  }

  function range(values) {
    let lo = Infinity, hi = -Infinity;
    for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
    return [lo, hi];
  }

  // series: [{name, points: [[iteration, y, at], ...]}]; opts: {title, height, boundaries, format,
  // log (offer the log toggle), file (the downloads' name)}. Zoom and log survive redraws.
  function line(host, series, opts = {}) {
    if (!host.chart) setUp(host);
    Object.assign(host.chart, { series, opts });
    host.chart.logBox.parentNode.hidden = !opts.log;
    draw(host);
  }

  function setUp(host) {
    const st = { log: false, zoom: null, width: 0, x: "iteration" };
    host.chart = st;
    host.classList.add("chart");
    const button = (label, action, fn) => gradq.el("button", { type: "button", "data-chart": action, onclick: fn }, label);
    st.logBox = gradq.el("input", { type: "checkbox", "data-chart": "log", onchange: () => { st.log = st.logBox.checked; draw(host); } });
    st.reset = button("all iterations", "reset", () => { st.zoom = null; draw(host); });
    st.left = button("◀", "left", () => pan(host, -0.5));
    st.right = button("▶", "right", () => pan(host, 0.5));
    st.left.title = "pan left by half the window";
    st.right.title = "pan right by half the window";
    st.xBox = gradq.el("select", { "data-chart": "x", title: "the x-axis", onchange: () => {
      Object.assign(st, { x: st.xBox.value, zoom: null });
      draw(host);
    } }, gradq.el("option", { value: "iteration" }, "x: iterations"), gradq.el("option", { value: "time" }, "x: wall time"));
    st.note = gradq.el("span", { class: "chart-note" });
    st.tools = gradq.el("div", { class: "chart-tools" }, st.note, st.xBox, gradq.el("label", {}, st.logBox, " log scale"), st.left, st.reset, st.right,
      button("CSV", "csv", () => save(host, "csv")), button("SVG", "svg", () => save(host, "svg")),
      button("PNG", "png", () => png(host)));
    st.plot = gradq.el("div", { class: "plot" });
    host.replaceChildren(st.tools, st.plot);
    let pending = false;
    new ResizeObserver(() => {
      if (pending || host.clientWidth === st.width) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; draw(host); });
    }).observe(host);
  }

  // The points on the chosen axis, [x, y, iteration]: wall time is seconds since the series'
  // first timed point, and leaves out points with no time (the note says how many).
  function onAxis(st) {
    const timed = st.series.some((s) => s.points.some((p) => p[2]));
    const time = timed && st.x === "time";
    st.xBox.disabled = !timed;
    st.xBox.value = time ? "time" : "iteration";
    const any = st.series.some((s) => s.points.length);
    let untimed = 0;
    const series = st.series.map((s) => {
      if (!time) return { ...s, points: s.points.map((p) => [p[0], p[1], p[0]]) };
      const t0 = Math.min(...s.points.filter((p) => p[2]).map((p) => Date.parse(p[2])));
      untimed = Math.max(untimed, s.points.filter((p) => !p[2]).length);
      return { ...s, points: s.points.filter((p) => p[2]).map((p) => [(Date.parse(p[2]) - t0) / 1000, p[1], p[0]]) };
    });
    st.note.textContent = !any ? "" : !timed ? "x in iterations: these points were stored without their time"
      : time && untimed ? `${untimed} earlier points have no time: shown by iteration only` : "";
    return { series, time };
  }

  // Seconds as the axis reads them: in s, min or h, whichever the span suits.
  function clockUnit(span) {
    return span < 180 ? [1, "s"] : span < 3 * 3600 ? [60, "min"] : [3600, "h"];
  }

  // Move the zoomed window by `by` of its width, within the curve's iterations (or times).
  function pan(host, by) {
    const st = host.chart;
    if (!st.zoom) return;
    const [lo, hi] = [Math.min(st.extent[0], 0), st.extent[1]];
    const width = st.zoom[1] - st.zoom[0];
    const start = Math.min(Math.max(st.zoom[0] + by * width, lo), Math.max(lo, hi - width));
    st.zoom = [start, start + width];
    draw(host);
  }

  function draw(host) {
    const st = host.chart, { opts } = st;
    const { series, time } = onAxis(st);
    st.width = host.clientWidth;
    const W = Math.max(320, st.width - 2), H = opts.height || 260;
    const legend = Math.min(190, Math.round(W * 0.3));
    const pad = { l: 56, r: legend + 8, t: 22, b: 30 };
    const fmt = opts.format || ((v) => v.toFixed(4));
    const log = Boolean(opts.log && st.log);
    const ty = log ? (v) => Math.log10(v) : (v) => v;
    const shown = (p) => p[1] !== null && isFinite(p[1]) && (!log || p[1] > 0)
      && (!st.zoom || (p[0] >= st.zoom[0] && p[0] <= st.zoom[1]));
    const kept = series.map((s) => s.points.filter(shown));
    st.reset.hidden = st.left.hidden = st.right.hidden = !st.zoom;
    st.extent = range(series.flatMap((s) => s.points.map((p) => p[0])));
    st.reset.textContent = time ? "all of it" : "all iterations";
    const root = svg("svg", { width: W, height: H, role: "img", "data-scale": log ? "log" : "linear", "data-x": time ? "time" : "iteration" });
    root.append(svg("rect", { width: W, height: H, fill: "#fff" }), text({ x: pad.l, y: 15, "font-size": 13, "font-weight": 600 }, opts.title || ""));
    const tip = gradq.el("div", { class: "tip" });
    st.plot.replaceChildren(root, tip);
    const [xlo, xhi] = range(kept.flatMap((k) => k.map((p) => p[0])));
    const [ylo, yhi] = range(kept.flatMap((k) => k.map((p) => ty(p[1]))));
    if (!isFinite(xlo) || !isFinite(ylo)) {
      root.append(text({ x: W / 2, y: H / 2, "text-anchor": "middle", fill: "#889" }, st.zoom ? "no points here" : "no points yet"));
      return;
    }
    let [x0, x1] = st.zoom ? st.zoom : [Math.min(xlo, 0), xhi];
    let [y0, y1] = [ylo, yhi];
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
    const X = (v) => pad.l + ((v - x0) / (x1 - x0)) * (W - pad.l - pad.r);
    const Y = (v) => H - pad.b - ((ty(v) - y0) / (y1 - y0)) * (H - pad.t - pad.b);
    for (const v of log ? logTicks(y0, y1) : ticks(y0, y1, 5)) {
      const at = H - pad.b - ((v - y0) / (y1 - y0)) * (H - pad.t - pad.b);
      root.append(svg("line", { x1: pad.l, x2: W - pad.r, y1: at, y2: at, stroke: "#eef0f3" }),
        text({ x: pad.l - 4, y: at + 4, "text-anchor": "end", "font-size": 11, class: "ytick" }, +(log ? 10 ** v : v).toPrecision(log ? 3 : 6)));
    }
    const [unit, unitName] = time ? clockUnit(x1 - x0) : [1, ""];
    for (const u of ticks(x0 / unit, x1 / unit, Math.max(3, Math.floor((W - pad.l - pad.r) / 80)))) {
      const words = +u.toPrecision(6) + (time ? " " + unitName : "");
      root.append(text({ x: X(u * unit), y: H - 10, "text-anchor": "middle", "font-size": 11, class: "xtick" }, words));
    }
    for (const b of time ? [] : opts.boundaries || []) {  // stage boundaries are iterations
      if (b < x0 || b > x1) continue;
      root.append(svg("line", { x1: X(b), x2: X(b), y1: pad.t, y2: H - pad.b, stroke: "#99a", "stroke-dasharray": "4 3" }));
    }
    series.forEach((s, i) => {
      const color = s.color || COLORS[i % COLORS.length];
      const d = kept[i].map((p, j) => (j ? "L" : "M") + X(p[0]).toFixed(1) + "," + Y(p[1]).toFixed(1)).join("");
      root.append(svg("path", { d, fill: "none", stroke: color, "stroke-width": 1.6, class: "curve" }));
      const name = gradq.visible(s.name), y = pad.t + 16 * i + 10, x = W - legend;
      const key = text({ x: x + 18, y, "font-size": 11, fill: color, class: "legend" }, name.length > NAME ? name.slice(0, NAME - 1) + "…" : name);
      key.append(svg("title", {}));
      key.lastChild.textContent = name;
      root.append(svg("line", { x1: x, x2: x + 14, y1: y - 4, y2: y - 4, stroke: color, "stroke-width": 2 }), key);
    });
    const cursor = svg("line", { y1: pad.t, y2: H - pad.b, stroke: "#445", visibility: "hidden" });
    const box = svg("rect", { y: pad.t, height: H - pad.t - pad.b, fill: "#2563eb", "fill-opacity": 0.15, visibility: "hidden", class: "zoom-box" });
    root.append(cursor, box);
    const at = (ev) => x0 + ((ev.clientX - root.getBoundingClientRect().left - pad.l) / (W - pad.l - pad.r)) * (x1 - x0);
    const px = (ev) => Math.min(Math.max(ev.clientX - root.getBoundingClientRect().left, pad.l), W - pad.r);
    let drag = null;
    root.addEventListener("mousedown", (ev) => { drag = [px(ev), at(ev)]; ev.preventDefault(); });
    root.addEventListener("mousemove", (ev) => {
      if (drag) {
        box.setAttribute("x", Math.min(drag[0], px(ev)));
        box.setAttribute("width", Math.abs(px(ev) - drag[0]));
        box.setAttribute("visibility", "visible");
      }
      hover(ev);
    });
    root.addEventListener("mouseup", (ev) => {
      if (drag && Math.abs(px(ev) - drag[0]) > 4) {
        const [a, b] = [drag[1], at(ev)].sort((m, n) => m - n);
        st.zoom = [Math.max(a, x0), Math.min(b, x1)];
        drag = null;
        draw(host);
        return;
      }
      drag = null;
      box.setAttribute("visibility", "hidden");
    });
    root.addEventListener("dblclick", () => { if (st.zoom) { st.zoom = null; draw(host); } });
    root.addEventListener("mouseleave", () => {
      drag = null;
      box.setAttribute("visibility", "hidden");
      tip.style.display = "none";
      cursor.setAttribute("visibility", "hidden");
    });

    function hover(ev) {
      const x = at(ev);
      const lines = [];
      let nearest = null;
      series.forEach((s, i) => {
        let best = null;
        for (const p of kept[i]) if (best === null || Math.abs(p[0] - x) < Math.abs(best[0] - x)) best = p;
        if (best === null) return;
        nearest = nearest === null || Math.abs(best[0] - x) < Math.abs(nearest - x) ? best[0] : nearest;
        lines.push([gradq.visible(s.name), best]);
      });
      if (nearest === null) return;
      const words = lines.map(([name, p]) => name + ": " + fmt(p[1]) + (p[0] !== nearest ? "  (it " + p[2] + ")" : ""));
      const first = lines.find(([, p]) => p[0] === nearest)[1];
      cursor.setAttribute("x1", X(nearest));
      cursor.setAttribute("x2", X(nearest));
      cursor.setAttribute("visibility", "visible");
      const where = time ? `after ${+nearest.toPrecision(4)} s (iteration ${first[2]})` : "iteration " + nearest;
      tip.textContent = where + "\n" + words.join("\n");
      tip.style.display = "block";
      tip.style.left = Math.max(0, Math.min(X(nearest) + 10, W - pad.r - 170)) + "px";
      tip.style.top = pad.t + 4 + "px";
    }
  }

  // A cell as a spreadsheet reads it: quoted, and never taken for a formula (=, +, -, @).
  function cell(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "number") return String(value);
    const words = gradq.visible(value);
    return '"' + (/^[=+\-@\t]/.test(words) ? "'" : "") + words.replace(/"/g, '""') + '"';
  }

  // The whole curve, a row per iteration and a column per series (empty where it has no point);
  // an `at` column (the database's UTC time of the point) when any point has one.
  function csv(series) {
    const rows = new Map(), at = new Map();
    series.forEach((s, i) => {
      for (const [x, y, when] of s.points) {
        if (!rows.has(x)) rows.set(x, new Array(series.length).fill(null));
        rows.get(x)[i] = y;
        if (when && !at.has(x)) at.set(x, when);
      }
    });
    const timed = at.size > 0;
    const head = ["iteration", ...(timed ? ["at"] : []), ...series.map((s) => s.name)].map(cell).join(",");
    const body = [...rows.keys()].sort((a, b) => a - b)
      .map((x) => [x, ...(timed ? [at.get(x) ?? null] : []), ...rows.get(x)].map(cell).join(","));
    return [head, ...body].join("\n") + "\n";
  }

  function save(host, kind) {
    const st = host.chart;
    const svgNode = st.plot.querySelector("svg");
    const data = kind === "csv" ? new Blob([csv(st.series)], { type: "text/csv" })
      : new Blob([new XMLSerializer().serializeToString(svgNode)], { type: "image/svg+xml" });
    offer(data, (st.opts.file || "chart") + "." + kind);
  }

  // The chart drawn at twice its size on white, as a PNG (the SVG through an image and a canvas;
  // a data: URL, which the page's content policy allows for images).
  function png(host) {
    const st = host.chart;
    const svgNode = st.plot.querySelector("svg");
    const [w, h] = [svgNode.width.baseVal.value, svgNode.height.baseVal.value];
    const img = new Image();
    img.onload = () => {
      const canvas = gradq.el("canvas", { width: 2 * w, height: 2 * h });
      const g = canvas.getContext("2d");
      g.fillStyle = "#fff";
      g.fillRect(0, 0, 2 * w, 2 * h);
      g.drawImage(img, 0, 0, 2 * w, 2 * h);
      canvas.toBlob((blob) => offer(blob, (st.opts.file || "chart") + ".png"), "image/png");
    };
    img.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(new XMLSerializer().serializeToString(svgNode));
  }

  function offer(data, name) {
    const link = gradq.el("a", { href: URL.createObjectURL(data), download: name });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  }

  return { line, csv, COLORS };
})();

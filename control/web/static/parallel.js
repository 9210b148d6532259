// A sweep's parallel coordinates: an axis per setting that differs among its runs (lr first, on
// a log scale when it spans 20x or more; words as evenly spaced categories; the run id when no
// setting differs), then the final dev accuracy; a line per run, coloured from its sweep's worst
// final dev accuracy (red) to its best (blue), grey without one. A click on a line opens its run; hovering shows its name and values.
// Every setting and name is text (textContent), never markup.
"use strict";

const parallel = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const HEIGHT = 260, TOP = 34, BOTTOM = 26, SIDE = 60;
  const DEV = "final dev", RUN = "run";
  const cache = new Map(); // ids -> {body, host}: a poll that changes nothing redraws nothing

  function svg(tag, attrs, words) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (words !== undefined) node.textContent = words;
    return node;
  }

  const fmt = (v) => typeof v === "number" ? Number(v.toPrecision(4)).toString() : String(v);

  // How one axis places a value in [0, 1] (bottom to top; null below it), and its marks.
  function axis(key, values) {
    const present = values.filter((v) => v !== null && v !== undefined);
    const none = present.length < values.length ? [[-0.1, "none"]] : [];
    if (present.length && present.every((v) => typeof v === "number")) {
      const lo = Math.min(...present), hi = Math.max(...present);
      const log = lo > 0 && hi / lo >= 20;
      const f = log ? Math.log10 : (x) => x;
      const place = (v) => v === null || v === undefined ? -0.1 : hi === lo ? 0.5 : (f(v) - f(lo)) / (f(hi) - f(lo));
      const marks = [...new Set([lo, hi])].map((v) => [place(v), fmt(v)]);
      return { key, place, marks: marks.concat(none), log };
    }
    const words = [...new Set(present.map(String))].sort();
    const place = (v) => v === null || v === undefined ? -0.1 : words.length === 1 ? 0.5 : words.indexOf(String(v)) / (words.length - 1);
    return { key, place, marks: words.map((w) => [place(w), w]).concat(none), log: false };
  }

  const valueOf = (r, key) => key === DEV ? r.final_dev_acc : key === RUN ? r.id : r.settings[key];

  // The settings that differ among the runs, lr first (the run id when none does), then the
  // dev accuracy axis.
  function axes(runs) {
    const keys = Object.keys(runs[0].settings).filter((k) =>
      new Set(runs.map((r) => JSON.stringify(r.settings[k]))).size > 1);
    keys.sort((a, b) => (b === "lr") - (a === "lr"));
    if (!keys.length) keys.push(RUN);
    keys.push(DEV);
    return keys.map((k) => axis(k, runs.map((r) => valueOf(r, k))));
  }

  function colour(dev, lo, hi) {
    if (dev === null) return "#9ca3af";
    const t = hi > lo ? (dev - lo) / (hi - lo) : 1;
    const mix = (a, b) => Math.round(a + (b - a) * t);
    return `rgb(${mix(220, 37)},${mix(38, 99)},${mix(38, 235)})`; // #dc2626 -> #2563eb
  }

  function draw(runs, width) {
    const list = axes(runs);
    const root = svg("svg", { class: "parallel", width, height: HEIGHT, viewBox: `0 0 ${width} ${HEIGHT}` });
    const gap = list.length > 1 ? (width - 2 * SIDE) / (list.length - 1) : 0;
    const x = (i) => list.length > 1 ? SIDE + i * gap : width / 2;
    const y = (t) => TOP + (1 - t) * (HEIGHT - TOP - BOTTOM);
    const devs = runs.map((r) => r.final_dev_acc).filter((v) => v !== null);
    const [lo, hi] = [Math.min(...devs), Math.max(...devs)];
    for (const r of runs) {
      const values = list.map((a) => valueOf(r, a.key));
      const points = values.map((v, i) => `${x(i).toFixed(1)},${y(list[i].place(v)).toFixed(1)}`).join(" ");
      const link = svg("a", { href: "/runs/" + r.id, "data-run": r.id });
      const said = list.map((a, i) => `${a.key} ${values[i] === null ? "none" : fmt(values[i])}`).join(", ");
      link.append(svg("title", {}, `run ${r.id} ${r.name}: ${said}`),
        svg("polyline", { points, stroke: colour(r.final_dev_acc, lo, hi) }));
      root.append(link);
    }
    list.forEach((a, i) => {
      const g = svg("g", { class: "axis", "data-axis": a.key });
      g.append(svg("line", { x1: x(i), x2: x(i), y1: y(0), y2: y(1) }),
        svg("text", { x: x(i), y: TOP - 16, "text-anchor": "middle", class: "axis-name" }, a.key + (a.log ? " (log)" : "")));
      for (const [t, words] of a.marks) {
        g.append(svg("text", { x: x(i) + 4, y: y(t) + 4, class: "mark" }, words.length > 14 ? words.slice(0, 13) + "…" : words));
      }
      root.append(g);
    });
    return root;
  }

  // A box that fetches the runs' settings and draws them; the same ids give the same box.
  function chart(ids) {
    const key = ids.join(",");
    if (cache.has(key)) return refresh(cache.get(key), key);
    const entry = { body: null, host: gradq.el("div", { class: "parallel-box", "data-ids": key }) };
    cache.set(key, entry);
    return refresh(entry, key);
  }

  function refresh(entry, key) {
    gradq.get("/api/settings?ids=" + key).then((runs) => {
      const body = JSON.stringify(runs);
      if (body === entry.body) return;
      entry.body = body;
      if (runs.length < 2) { entry.host.replaceChildren(); return; }
      const width = Math.max(480, Math.min(1100, entry.host.clientWidth || 900));
      entry.host.replaceChildren(gradq.el("p", { class: "parallel-note" },
        `${runs.length} runs: a line each, from red (the worst final dev accuracy) to blue (the best); click one to open it`),
        draw(runs, width));
    }).catch((e) => entry.host.replaceChildren(gradq.el("p", { class: "error" }, `settings: ${e.message}`)));
    return entry.host;
  }

  return { chart, axes };
})();

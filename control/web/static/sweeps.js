// Sweeps on the runs page (?view=sweeps): runs named as `gradq sweep` names them, "sweep lr=0.5
// relu,relu 10,10 seed=0", as one grid per sweep: a row per net and seed, a column per lr.
"use strict";

const sweeps = (() => {
  // what else a sweep varies follows the seed: "... seed=0 nesterov bs=64" (a row each)
  const NAME = /^sweep lr=(\S+) (\S+) (\S+) seed=(\S+)(?: (.+))?$/;

  // A sweep is a block of consecutive sweep runs; a repeated grid point starts the next one.
  function group(rows) {
    const out = [];
    let current = null;
    for (const r of rows.slice().sort((a, b) => a.id - b.id)) {
      if (!r.name.startsWith("sweep ")) { current = null; continue; }
      const m = NAME.exec(r.name);
      const point = m ? { lr: m[1], row: `${m[2]} ${m[3]} seed=${m[4]}${m[5] ? " " + m[5] : ""}` } : { lr: "", row: r.name.slice(6) };
      const key = point.row + "\n" + point.lr;
      if (!current || current.cells.has(key)) {
        current = { cells: new Map(), runs: [] };
        out.push(current);
      }
      current.cells.set(key, r);
      current.runs.push(Object.assign(point, { run: r }));
    }
    return out;
  }

  function grid(sweep) {
    const { el, pct, status } = gradq;
    const lrs = [...new Set(sweep.runs.map((p) => p.lr))].sort((a, b) => (a === "" ? 1 : b === "" ? -1 : Number(a) - Number(b)));
    const rowNames = [...new Set(sweep.runs.map((p) => p.row))];
    const best = Math.max(...sweep.runs.map((p) => p.run.best_dev_acc ?? -1));
    const ids = sweep.runs.map((p) => p.run.id);
    return el("table", { class: "sweep", "data-first": ids[0] },
      el("caption", {}, `sweep of ${ids.length} runs, ${ids[0]}..${ids[ids.length - 1]}`),
      el("thead", {}, el("tr", {}, el("th", {}, "net, seed"), lrs.map((lr) => el("th", {}, lr === "" ? "other" : "lr " + lr)))),
      el("tbody", {}, rowNames.map((row) => el("tr", {}, el("th", { class: "cut", title: row }, row), lrs.map((lr) => {
        const r = sweep.cells.get(row + "\n" + lr);
        if (!r) return el("td", {}, "");
        const top = r.best_dev_acc !== null && r.best_dev_acc === best;
        return el("td", { class: "num" + (top ? " best" : ""), "data-run": r.id },
          el("a", { href: "/runs/" + r.id, title: r.name }, pct(r.best_dev_acc)), " ", status(r.status));
      })))));
  }

  // Every sweep among `rows`, newest first, each as its grid and its parallel coordinates
  // (parallel.js); a line when there is none.
  function tables(rows) {
    const found = group(rows).reverse();
    return found.length
      ? found.flatMap((s) => [grid(s), parallel.chart(s.runs.map((p) => p.run.id))])
      : [gradq.el("p", {}, "no sweeps here: `gradq sweep` names its runs \"sweep lr=…\"")];
  }

  // Halving sweeps (`gradq sweep --halving`), each a link to its rungs: newest first.
  function halving(list) {
    const { el } = gradq;
    if (!list.length) return [];
    return [el("table", { class: "halving" },
      el("caption", {}, "halving sweeps"),
      el("thead", {}, el("tr", {}, ["sweep", "runs", "eta", "decisions", "state", "best run"].map((h) => el("th", {}, h)))),
      el("tbody", {}, list.slice().reverse().map((d) => el("tr", { "data-sweep": d.id },
        el("td", {}, el("a", { href: "/sweeps/" + d.id }, `sweep ${d.id}`)), el("td", { class: "num" }, d.size),
        el("td", { class: "num" }, d.eta), el("td", {}, `${d.decided_rung} of ${d.rungs - 1}`),
        el("td", {}, d.settled ? "settled" : "in progress"),
        el("td", {}, d.best_run_id === null ? "-" : el("a", { href: "/runs/" + d.best_run_id }, `run ${d.best_run_id}`))))))];
  }

  return { group, tables, halving };
})();

// Several runs' curves overlaid, with their settings side by side: a row per setting, a column
// per run, and the settings that differ between the runs marked (class "differs").
"use strict";
(() => {
  const { el, get, pct, status, say, poll } = gradq;
  const page = document.getElementById("page");
  const ids = new URLSearchParams(location.search).get("ids") || "";
  const charts = { dev: el("div", {}), train: el("div", {}), loss: el("div", {}) };
  const settings = el("div", {});
  page.prepend(el("h1", {}, "Compare"));
  page.append(settings, charts.dev, charts.train, charts.loss);
  if (!ids) { say("pick runs on the runs page, or open /compare?ids=1,2"); return; }
  const FIRST = ["hidden", "activations", "init", "dtype", "seed", "batch_size", "dev_size"];
  const text = (v) => (typeof v === "string" ? v : JSON.stringify(v));
  let shown = "";

  // [label, value of a run, is it a setting (marked when it differs)]
  function lines(rows) {
    const keys = [...new Set([...FIRST, ...rows.flatMap((r) => Object.keys(r.settings))])];
    return [
      ["status", (r) => status(r.status), false],
      ["best dev", (r) => pct(r.best_dev_acc), false],
      ["schedule", (r) => r.schedule.map(([lr, n]) => `${lr}:${n}`).join(" "), true],
      ...keys.map((k) => [k, (r) => text(r.settings[k]), true]),
    ];
  }

  function table(rows) {
    const head = el("tr", {}, el("th", {}, "run"), rows.map((r) => el("th", { class: "run" },
      el("a", { href: "/runs/" + r.id, class: "run-name", title: `${r.id} ${r.name}` }, `${r.id} ${r.name}`))));
    const body = lines(rows).map(([label, value, setting]) => {
      const cells = rows.map(value);
      const differs = setting && new Set(cells).size > 1;
      return el("tr", { class: differs ? "differs" : "", "data-setting": label },
        el("th", {}, label), cells.map((c) => el("td", {}, el("div", typeof c === "string" ? { class: "cut", title: c } : { class: "cut" }, c))));
    });
    const count = body.filter((tr) => tr.classList.contains("differs")).length;
    return [el("p", { class: "differ-count" }, count ? `${count} setting(s) differ, marked below` : "the runs share every setting"),
      el("div", { class: "scroll" }, el("table", { class: "compare" }, el("thead", {}, head), el("tbody", {}, body)))];
  }

  async function refresh() {
    const rows = await get("/api/compare?ids=" + encodeURIComponent(ids));
    settings.replaceChildren(...table(rows));
    const key = JSON.stringify(rows.map((r) => r.points.length));
    if (key === shown) return;
    shown = key;
    const series = (f) => rows.map((r) => ({ name: `${r.id} ${r.name}`, points: r.points.map((p) => [p.iteration, p[f], p.at]) }));
    const asPct = (v) => (100 * v).toFixed(2) + "%";
    chart.line(charts.dev, series("dev_acc"), { title: "dev accuracy", format: asPct, file: "compare-dev" });
    chart.line(charts.train, series("train_acc"), { title: "train accuracy", format: asPct, file: "compare-train" });
    chart.line(charts.loss, series("loss"), { title: "loss", log: true, file: "compare-loss" });
  }
  poll(refresh, 5000);
})();

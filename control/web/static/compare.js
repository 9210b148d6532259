// Several runs' curves overlaid, with their settings side by side.
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
  let shown = "";
  async function refresh() {
    const rows = await get("/api/compare?ids=" + encodeURIComponent(ids));
    const keys = ["hidden", "activations", "init", "dtype", "seed", "batch_size", "dev_size"];
    settings.replaceChildren(el("table", {},
      el("thead", {}, el("tr", {}, ["run", "name", "status", "best dev", "schedule", ...keys].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((r) => el("tr", {},
        el("td", {}, el("a", { href: "/runs/" + r.id }, r.id)), el("td", {}, r.name), el("td", {}, status(r.status)),
        el("td", {}, pct(r.best_dev_acc)), el("td", {}, r.schedule.map(([lr, n]) => `${lr}:${n}`).join(" ")),
        keys.map((k) => el("td", {}, JSON.stringify(r.settings[k]))))))));
    const key = JSON.stringify(rows.map((r) => r.points.length));
    if (key === shown) return;
    shown = key;
    const series = (f) => rows.map((r) => ({ name: `${r.id} ${r.name}`.slice(0, 40), points: r.points.map((p) => [p.iteration, p[f]]) }));
    const asPct = (v) => (100 * v).toFixed(2) + "%";
    chart.line(charts.dev, series("dev_acc"), { title: "dev accuracy", format: asPct });
    chart.line(charts.train, series("train_acc"), { title: "train accuracy", format: asPct });
    chart.line(charts.loss, series("loss"), { title: "loss" });
  }
  poll(refresh, 5000);
})();

// A snapshot on a split: per-class accuracy, the confusion matrix as a heatmap, wrong digits.
"use strict";
(() => {
  const { el, get, pct, say } = gradq;
  const page = document.getElementById("page");
  const snapshotId = Number(location.pathname.split("/").pop());
  const split = new URLSearchParams(location.search).get("split") || "dev";
  page.prepend(el("h1", {}, `Evaluate snapshot ${snapshotId} on ${split}`),
    el("div", { class: "actions" }, ["dev", "test", "train"].map((s) => el("a", { href: `?split=${s}` }, s + " "))));
  say("evaluating…");

  function heatmap(cm) {
    const max = Math.max(...cm.flat(), 1);
    const head = el("tr", {}, el("th", {}, "true \\ pred"), cm.map((_, j) => el("th", {}, j)));
    return el("table", { class: "heat" }, el("thead", {}, head), el("tbody", {}, cm.map((row, i) => el("tr", {},
      el("th", {}, i), row.map((n, j) => {
        const cell = el("td", { class: "num", title: `true ${i}, predicted ${j}: ${n}` }, n);
        const a = Math.sqrt(n / max);
        cell.style.background = i === j ? `rgba(22,163,74,${a})` : `rgba(220,38,38,${a})`;
        return cell;
      })))));
  }

  function digit(pixels) {
    const c = el("canvas", { class: "digit", width: 28, height: 28 });
    const ctx = c.getContext("2d");
    const img = ctx.createImageData(28, 28);
    pixels.forEach((v, i) => {
      img.data.set([255 - v, 255 - v, 255 - v, 255], 4 * i);
    });
    ctx.putImageData(img, 0, 0);
    return c;
  }

  get(`/api/snapshots/${snapshotId}/evaluate?split=${encodeURIComponent(split)}`).then((r) => {
    say("");
    page.append(
      el("p", {}, `run `, el("a", { href: "/runs/" + r.run_id }, r.run_id), `, iteration ${r.iteration}: accuracy ${pct(r.accuracy)} on ${r.count} digits`),
      el("h2", {}, "Per class"),
      el("table", {}, el("tr", {}, r.per_class.map((_, k) => el("th", {}, k))), el("tr", {}, r.per_class.map((a) => el("td", { class: "num" }, pct(a))))),
      el("h2", {}, "Confusion matrix"), heatmap(r.confusion),
      el("h2", {}, "Misclassified"),
      el("div", { class: "digits" }, r.misclassified.map((m) => el("figure", {}, digit(m.pixels),
        el("figcaption", {}, `#${m.index}: ${m.label} → ${m.predicted}`)))));
  }).catch((e) => say(e.message));
})();

// A halving sweep's page: each rung's runs in rank order by dev accuracy at the rung's end, the
// cut after the best ceil(n / eta) (who went on, who was stopped and why), and the runs halving
// stopped; polled while the sweep runs.
"use strict";
(() => {
  const { el, get, pct, status, say, poll } = gradq;
  const page = document.getElementById("page");
  const sweepId = Number(location.pathname.split("/").pop());
  const head = el("div", {}), rungs = el("div", {}), stopped = el("div", { id: "stopped" });
  page.prepend(head);
  const settings = el("div", {});
  page.append(rungs, el("h2", {}, "Stopped by halving"), stopped,
    el("h2", {}, "Settings against final dev accuracy"), settings);

  const runLink = (id, name) => el("a", { href: "/runs/" + id, class: "run-name", title: name ?? "" }, `${id} ${name ?? ""}`);

  function rung(r, eta) {
    const n = r.runs.length;
    const rule = r.keep ? `the best ${r.keep} of ${n} go on (ceil(${n} / ${eta}))` : "the last rung: nothing follows";
    const state = r.decided ? "decided" : r.keep ? "not decided yet" : "final";
    const rows = [];
    r.runs.forEach((e, i) => {
      rows.push(el("tr", { "data-run": e.run_id, "data-fate": e.fate, class: e.promoted ? "went-on" : "" },
        el("td", { class: "num" }, e.rank), el("td", { class: "c-name" }, runLink(e.run_id, e.name)),
        el("td", {}, status(e.status)), el("td", { class: "num" }, pct(e.dev_acc)),
        el("td", { class: "fate", title: e.stopped ?? "" }, e.fate)));
      if (r.keep && i + 1 === r.keep && i + 1 < n) {
        rows.push(el("tr", { class: "cut-line" }, el("td", { colspan: 5 },
          `cut: ${rule}` + (r.decided ? "" : "; ranks may still change"))));
      }
    });
    return el("table", { class: "rung", "data-rung": r.rung },
      el("caption", {}, `rung ${r.rung}: ${n} run${n === 1 ? "" : "s"}, ${rule} (${state})`),
      el("thead", {}, el("tr", {}, ["rank", "run", "status", "dev at rung end", "fate"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows));
  }

  async function refresh() {
    const d = await get(`/api/sweeps/${sweepId}`);
    head.replaceChildren(el("h1", {}, `Sweep ${d.id}`), el("p", { class: "sweep-rule" },
      `${d.size} runs, halving by ${d.eta}, rungs of ${d.rung}, at most ${d.rungs} rungs; `,
      `${d.decided_rung} of ${d.rungs - 1} decisions taken; ${d.settled ? "settled" : "in progress"}`,
      d.best_run_id === null ? "" : el("span", {}, "; best: ", el("a", { href: "/runs/" + d.best_run_id }, `run ${d.best_run_id}`))));
    rungs.replaceChildren(...d.rung_results.map((r) => rung(r, d.eta)));
    const members = [...new Set(d.rung_results.flatMap((r) => r.runs.map((e) => e.run_id)))].sort((a, b) => a - b);
    if (members.length) settings.replaceChildren(parallel.chart(members));
    const halted = d.rung_results.flatMap((r) => r.runs.filter((e) => e.stopped));
    stopped.replaceChildren(halted.length
      ? el("ul", {}, halted.map((e) => el("li", { "data-run": e.run_id }, runLink(e.run_id, e.name), ": ", e.stopped,
        `, dev ${pct(e.dev_acc)}`)))
      : el("p", {}, "none yet"));
    say("");
  }

  poll(refresh);
})();

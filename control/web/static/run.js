// A run's page: settings, stage timeline, curves with stage boundaries, snapshots, lineage,
// tags and notes, and the actions; polled every 2 s while it trains.
"use strict";
(() => {
  const { el, get, act, pct, num, duration, status, say, poll, session } = gradq;
  const page = document.getElementById("page");
  const runId = Number(location.pathname.split("/").pop());
  const parts = {};
  for (const id of ["head", "actions", "settings", "timeline", "acc", "loss", "stages", "snapshots", "lineage", "notes"]) {
    parts[id] = el("div", { id });
  }
  page.prepend(parts.head, parts.actions);
  page.append(parts.settings, el("h2", {}, "Schedule"), parts.timeline, parts.acc, parts.loss,
    el("h2", {}, "Stages"), parts.stages, el("h2", {}, "Lineage"), parts.lineage,
    el("h2", {}, "Notes"), parts.notes, el("h2", {}, "Snapshots"), parts.snapshots);
  let shown = "";

  const doing = (label, fn) => el("button", { "data-action": label, onclick: async () => {
    try { say(""); await fn(); await refresh(); } catch (e) { say(e.message); }
  } }, label);
  const stageInput = el("input", { placeholder: "LR:ITERS, e.g. 0.5:500", size: 18 });
  const tagInput = el("input", { placeholder: "tag", size: 10 });
  const noteInput = el("input", { placeholder: "a note", size: 30 });
  function schedule() {
    return stageInput.value.split(/[ ,]+/).filter(Boolean).map((t) => {
      const [lr, iterations] = t.split(":");
      return { lr: Number(lr), iterations: Number(iterations) };
    });
  }
  parts.actions.className = "actions";
  parts.actions.append(
    doing("pause", () => act(`/api/runs/${runId}/pause`)),
    doing("resume", () => act(`/api/runs/${runId}/resume`)),
    doing("cancel", () => act(`/api/runs/${runId}/cancel`)),
    stageInput,
    doing("continue", () => act(`/api/runs/${runId}/continue`, { stages: schedule() })),
    tagInput,
    doing("tag", () => act(`/api/runs/${runId}/tags`, { add: [tagInput.value] })),
    noteInput,
    doing("note", async () => { await act(`/api/runs/${runId}/notes`, { text: noteInput.value }); noteInput.value = ""; }),
    doing("delete", async () => {
      if (!confirm(`Delete run ${runId} with its snapshots?`)) return;
      await act(`/api/runs/${runId}/delete`);
      location.href = "/";
    }));

  function table(headers, rows) {
    return el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c))))));
  }

  function timeline(stages) {
    const total = stages.reduce((n, x) => n + x.iterations, 0) || 1;
    return el("div", { class: "timeline" }, stages.map((x) => {
      const box = el("div", { class: "s-" + x.status, title: `stage ${x.position}: lr ${x.lr}, ${x.iterations} its, ${x.status}` },
        `lr ${x.lr} · ${x.iterations_done}/${x.iterations} · ${x.status}`);
      box.style.flex = `${x.iterations / total} 1 0`;  // long stages wide, short ones still legible
      box.style.minWidth = "70px";
      return box;
    }));
  }

  function tree(forks) {
    if (!forks.length) return null;
    return el("ul", {}, forks.map((f) => el("li", {},
      el("a", { href: "/runs/" + f.run_id }, `run ${f.run_id} `), f.name, ` (from snapshot ${f.snapshot_id}, iteration ${f.iteration})`, tree(f.forks))));
  }

  async function refresh() {
    const d = await get(`/api/runs/${runId}`);
    document.title = `gradq · run ${d.id}`;
    parts.head.replaceChildren(el("h1", {}, `run ${d.id} `, el("span", { class: "run-name" }, d.name), " ", status(d.status)),
      el("div", {}, d.tags.map((t) => el("span", { class: "tag" }, t))),
      d.sweep_id === null ? "" : el("div", { class: "in-sweep" }, "in ", el("a", { href: "/sweeps/" + d.sweep_id }, `halving sweep ${d.sweep_id}`),
        d.stopped ? ": " + d.stopped : ""));
    const s = d.settings;
    parts.settings.replaceChildren(el("div", {},
      `net 784-${s.hidden.join("-")}-10 ${s.activations.join(",")}, init ${s.init}, ${s.dtype}, seed ${s.seed}, `,
      s.batch_size === null ? "full batch" : `batch ${s.batch_size}`, `; data `, s.dataset,
      ` (dev ${s.dev_size}); point every ${s.eval_every}, snapshot every ${s.snapshot_every}. `,
      `Now at iteration ${d.iteration}: train ${pct(d.train_acc)}, dev ${pct(d.dev_acc)}, best dev ${pct(d.best_dev_acc)}.`));
    parts.timeline.replaceChildren(timeline(d.stages));
    const key = JSON.stringify([d.points.length, d.iteration, d.stages.map((x) => x.status)]);
    if (key !== shown) {  // redraw only when something changed, so hovering stays steady
      shown = key;
      const bounds = d.stages.slice(1).map((x) => x.start_iteration).filter((v) => v !== null);
      const pts = (f) => d.points.map((p) => [p.iteration, p[f], p.at]);
      chart.line(parts.acc, [{ name: "train", points: pts("train_acc") }, { name: "dev", points: pts("dev_acc") }],
        { title: "accuracy", boundaries: bounds, format: (v) => (100 * v).toFixed(2) + "%", file: `run-${runId}-accuracy` });
      chart.line(parts.loss, [{ name: "loss", points: pts("loss") }], { title: "loss", boundaries: bounds, log: true, file: `run-${runId}-loss` });
      parts.acc.setAttribute("data-points", d.points.length);
    }
    parts.stages.replaceChildren(table(["#", "stage", "lr", "iters", "status", "done", "it/s", "ETA", "worker", "error"],
      d.stages.map((x) => [x.position, x.id, x.lr, x.iterations, status(x.status), x.iterations_done,
        num(x.rate), duration(x.eta_seconds), x.worker || "", (x.error || "").slice(0, 80)])));
    const up = d.lineage.map((h) => el("div", {}, "forked from ", el("a", { href: "/runs/" + h.run_id }, `run ${h.run_id}`),
      ` at snapshot ${h.snapshot_id} (iteration ${h.iteration})`));
    parts.lineage.replaceChildren(...up, tree(d.forks) || (up.length ? "" : "no parent, no forks"));
    parts.notes.replaceChildren(...d.notes.map((n) => el("div", { class: "note" }, n.created_at.slice(0, 19) + "  ", n.text)));
    parts.snapshots.replaceChildren(table(["id", "iteration", "size", "sha256", ""],
      d.snapshots.slice().reverse().map((x) => [x.id, x.iteration, x.size, x.sha256.slice(0, 16) + "…",
        el("span", {}, el("a", { href: "/evaluate/" + x.id }, "evaluate"), " ",
          el("button", { onclick: () => fork(x.id) }, "fork"))])));
  }

  async function fork(snapshotId) {
    const text = prompt("Stages for the fork (LR:ITERS, comma-separated)", "0.5:500");
    if (!text) return;
    stageInput.value = text;
    try {
      const out = await act(`/api/snapshots/${snapshotId}/fork`, { stages: schedule() });
      location.href = "/runs/" + out.run_id;
    } catch (e) { say(e.message); }
  }

  session().then(() => poll(refresh));
})();

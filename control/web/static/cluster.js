// What `gradq status` reports: broker, database, live workers and their queues, stages by status.
"use strict";
(() => {
  const { el, get, say, poll } = gradq;
  const page = document.getElementById("page");
  const body = el("div", {});
  page.prepend(el("h1", {}, "Cluster"));
  page.append(body);
  async function refresh() {
    const d = await get("/api/cluster");
    const kv = (k, v) => el("tr", {}, el("th", {}, k), el("td", {}, v === null || v === undefined ? "-" : String(v)));
    body.replaceChildren(
      el("table", {}, kv("broker", d.broker + (d.broker_ok ? "" : "  (down: " + (d.broker_error || "") + ")")),
        kv("database", d.database), kv("database id", d.database_id), kv("queue", d.queue), kv("queue depth", d.queue_depth)),
      el("h2", {}, "Workers"),
      (d.workers || []).length
        ? el("table", {}, el("tr", {}, el("th", {}, "worker"), el("th", {}, "queues")),
            d.workers.map((w) => el("tr", {}, el("td", {}, w.name),
              el("td", {}, w.queues.map((q) => q.queue + "@" + (q.database || "?")).join(", ")))))
        : el("p", {}, "no live worker"),
      el("h2", {}, "Stages by status"),
      el("table", {}, Object.entries(d.stages || {}).map(([k, n]) => kv(k, n))),
      (d.waiting || []).map((w) => el("p", { class: "msg" }, w.note)));
    say("");
  }
  poll(refresh, 5000);
})();

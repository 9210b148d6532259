// The runs page: every run with its progress, rate, ETA, best dev accuracy and tags, live.
"use strict";
(() => {
  const { el, get, pct, num, duration, age, status, say, poll } = gradq;
  const page = document.getElementById("page");
  const query = new URLSearchParams(location.search);
  const field = (name, hint) => el("input", { name, placeholder: hint, value: query.get(name) || "" });
  const statusBox = el("select", { name: "status" },
    ["", "running", "queued", "paused", "succeeded", "failed", "cancelled", "empty"]
      .map((s) => el("option", s === (query.get("status") || "") ? { value: s, selected: "" } : { value: s }, s || "any status")));
  const tagBox = field("tag", "tag"), nameBox = field("name", "name holds");
  const compareBtn = el("button", { onclick: () => {
    const ids = [...page.querySelectorAll("input.pick:checked")].map((c) => c.value);
    if (ids.length) location.href = "/compare?ids=" + ids.join(",");
  } }, "Compare selected");
  const form = el("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); apply(); } },
    statusBox, tagBox, nameBox, el("button", { type: "submit" }, "Filter"), compareBtn);
  const body = el("tbody", { id: "runs" });
  page.prepend(el("h1", {}, "Runs"), form);
  page.append(el("table", {}, el("thead", {}, el("tr", {},
    ["", "id", "name", "status", "progress", "iteration", "it/s", "ETA", "best dev", "tags", "age"].map((h) => el("th", {}, h)))), body));

  function apply() {
    const q = new URLSearchParams();
    for (const [k, box] of [["status", statusBox], ["tag", tagBox], ["name", nameBox]]) if (box.value) q.set(k, box.value);
    history.replaceState(null, "", q.toString() ? "?" + q : "/");
    refresh();
  }

  async function refresh() {
    const picked = new Set([...page.querySelectorAll("input.pick:checked")].map((c) => c.value));
    const rows = await get("/api/runs" + location.search);
    body.replaceChildren(...rows.slice().reverse().map((r) => el("tr", { "data-run": r.id },
      el("td", {}, el("input", picked.has(String(r.id)) ? { type: "checkbox", class: "pick", value: r.id, checked: "" } : { type: "checkbox", class: "pick", value: r.id })),
      el("td", { class: "num" }, r.id),
      el("td", {}, el("a", { href: "/runs/" + r.id, class: "run-name" }, r.name)),
      el("td", {}, status(r.status)),
      el("td", {}, el("span", { class: "bar" }, progressBar(r.progress)), " ", r.progress === null ? "" : Math.round(100 * r.progress) + "%"),
      el("td", { class: "num" }, r.iteration),
      el("td", { class: "num" }, num(r.rate)),
      el("td", { class: "num" }, duration(r.eta_seconds)),
      el("td", { class: "num" }, pct(r.best_dev_acc)),
      el("td", {}, r.tags.map((t) => el("span", { class: "tag" }, t))),
      el("td", {}, age(r.created_at)))));
    say(rows.length ? "" : "no runs match");
  }

  function progressBar(p) {
    const fill = el("span", {});
    fill.style.width = Math.round(100 * (p || 0)) + "%";
    return fill;
  }

  poll(refresh);
})();

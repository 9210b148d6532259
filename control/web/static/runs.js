// The runs page: every run with its progress, rate, ETA, best dev accuracy and tags, live;
// sorted by any column (click its header) and shown a page at a time: the server sorts, counts
// and sends one page (/api/runs?sort=best&order=desc&limit=50&offset=50), so 10,000 runs stay fast.
"use strict";
(() => {
  const { el, get, pct, num, duration, age, status, say, poll } = gradq;
  const PAGE = 50;  // rows drawn at once: only these reach the DOM, however many runs there are
  const page = document.getElementById("page");
  const query = new URLSearchParams(location.search);
  const field = (name, hint) => el("input", { name, placeholder: hint, value: query.get(name) || "" });
  const statusBox = el("select", { name: "status" },
    ["", "running", "queued", "paused", "succeeded", "stopped", "failed", "cancelled", "empty"]
      .map((s) => el("option", s === (query.get("status") || "") ? { value: s, selected: "" } : { value: s }, s || "any status")));
  const tagBox = field("tag", "tag"), nameBox = field("name", "name holds");
  const picked = new Set();  // ids ticked for Compare, kept across pages and refreshes
  const compareBtn = el("button", { type: "button", onclick: () => {
    if (picked.size) location.href = "/compare?ids=" + [...picked].join(",");
  } }, "Compare selected");
  const viewBtn = el("button", { type: "button", "data-view": "toggle", onclick: () => {
    state.view = state.view === "sweeps" ? "" : "sweeps";
    remember();
    refresh();
  } });
  const form = el("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); apply(); } },
    statusBox, tagBox, nameBox, el("button", { type: "submit" }, "Filter"), compareBtn, viewBtn);

  // key, header, whether the server sorts by it (nulls last either way), cell
  const progressText = (r) => (r.progress === null ? "" : Math.round(100 * r.progress) + "%");
  const COLUMNS = [
    ["pick", "", null, (r) => el("input", picked.has(String(r.id))
      ? { type: "checkbox", class: "pick", value: r.id, checked: "" } : { type: "checkbox", class: "pick", value: r.id })],
    ["id", "id", true, (r) => r.id],
    ["name", "name", true, (r) => el("a", { href: "/runs/" + r.id, class: "run-name", title: r.name }, r.name)],
    ["status", "status", true, (r) => status(r.status)],
    ["progress", "progress", true, (r) => [el("span", { class: "bar" }, progressBar(r.progress)), " ", progressText(r)]],
    ["iteration", "iteration", true, (r) => r.iteration],
    ["rate", "it/s", true, (r) => num(r.rate)],
    ["eta", "ETA", true, (r) => duration(r.eta_seconds)],
    ["best", "best dev", true, (r) => pct(r.best_dev_acc)],
    ["tags", "tags", true, (r) => r.tags.map((t) => el("span", { class: "tag", title: t }, t))],
    ["age", "age", true, (r) => age(r.created_at)],
  ];
  const NUMERIC = new Set(["id", "progress", "iteration", "rate", "eta", "best", "age"]);
  const sortable = new Set(COLUMNS.filter((c) => c[2]).map((c) => c[0]));

  // the sort and the page live in the URL (?sort=-best&page=2): a reload or a shared link keeps them
  const state = { sort: "id", desc: true, page: Number(query.get("page")) || 1, view: query.get("view") === "sweeps" ? "sweeps" : "" };
  const asked = query.get("sort") || "";
  if (sortable.has(asked.replace(/^-/, ""))) Object.assign(state, { sort: asked.replace(/^-/, ""), desc: asked.startsWith("-") });

  const head = el("tr", {}, COLUMNS.map(([key, label, value]) => value
    ? el("th", { class: "c-" + key + " sortable", "data-sort": key, tabindex: 0, onclick: () => sortBy(key),
      onkeydown: (e) => { if (e.key === "Enter") sortBy(key); } }, label)
    : el("th", { class: "c-" + key }, label)));
  const body = el("tbody", { id: "runs", onchange: (e) => {
    if (!e.target.classList.contains("pick")) return;
    if (e.target.checked) picked.add(e.target.value); else picked.delete(e.target.value);
  } });
  const pager = el("div", { class: "pager" });
  const table = el("table", { class: "runs" }, el("thead", {}, head), body);
  const sweepBox = el("div", { class: "sweeps" });
  page.prepend(el("h1", {}, "Runs"), form);
  page.append(table, pager, sweepBox);

  let rows = [], total = 0, latest = 0, halvings = [];  // the page's rows, how many runs match, the newest request

  function apply() {
    state.page = 1;
    remember();
    refresh();
  }

  function sortBy(key) {
    if (state.sort === key) state.desc = !state.desc;
    else Object.assign(state, { sort: key, desc: NUMERIC.has(key) && key !== "age" });
    state.page = 1;
    remember();
    refresh();
  }

  function goTo(n) {
    state.page = n;
    remember();
    refresh();
  }

  // The filters for the API, the sort and page for the page: all in the address bar.
  function filters() {
    const q = new URLSearchParams();
    for (const [k, box] of [["status", statusBox], ["tag", tagBox], ["name", nameBox]]) if (box.value) q.set(k, box.value);
    return q;
  }

  function remember() {
    const q = filters();
    if (state.sort !== "id" || !state.desc) q.set("sort", (state.desc ? "-" : "") + state.sort);
    if (state.page > 1) q.set("page", state.page);
    if (state.view) q.set("view", state.view);
    history.replaceState(null, "", q.toString() ? "?" + q : "/");
  }

  function draw() {
    const sweeping = state.view === "sweeps";
    viewBtn.textContent = sweeping ? "All runs" : "Sweeps";
    table.hidden = pager.hidden = sweeping;
    sweepBox.hidden = !sweeping;
    if (sweeping) {
      sweepBox.replaceChildren(...sweeps.halving(halvings), ...sweeps.tables(rows));
      say(rows.length ? "" : "no runs match");
      return;
    }
    const pages = Math.max(1, Math.ceil(total / PAGE));
    for (const th of head.children) {
      const key = th.getAttribute("data-sort");
      if (!key) continue;
      if (key === state.sort) th.setAttribute("aria-sort", state.desc ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    }
    body.replaceChildren(...rows.map((r) => el("tr", { "data-run": r.id },
      COLUMNS.map(([key, , , cell]) => el("td", { class: "c-" + key + (NUMERIC.has(key) && key !== "progress" ? " num" : "") }, cell(r))))));
    pages > 1 ? pager.replaceChildren(
      button("first", 1, state.page > 1), button("previous", state.page - 1, state.page > 1),
      el("span", { class: "where" }, `page ${state.page} of ${pages} (${total} runs)`),
      button("next", state.page + 1, state.page < pages), button("last", pages, state.page < pages))
      : pager.replaceChildren(total ? el("span", { class: "where" }, `${total} runs`) : "");
    say(rows.length ? "" : "no runs match");
  }

  function button(label, to, enabled) {
    return el("button", enabled ? { type: "button", "data-page": label, onclick: () => goTo(to) }
      : { type: "button", "data-page": label, disabled: "" }, label);
  }

  // One page from the server, sorted there; a page past the end (runs deleted) goes to the last.
  async function fetchPage() {
    const q = filters();
    q.set("sort", state.sort);
    q.set("order", state.desc ? "desc" : "asc");
    q.set("limit", PAGE);
    q.set("offset", (state.page - 1) * PAGE);
    const answer = await get("/api/runs?" + q);
    if (answer.total && !answer.runs.length && state.page > 1) {
      state.page = Math.ceil(answer.total / PAGE);
      remember();
      return fetchPage();
    }
    return answer;
  }

  // The sweeps view groups every matching run by id: it reads them a thousand at a time.
  async function fetchAll() {
    const out = [];
    for (let offset = 0; ; offset += 1000) {
      const q = filters();
      Object.entries({ sort: "id", order: "asc", limit: 1000, offset }).forEach(([k, v]) => q.set(k, v));
      const answer = await get("/api/runs?" + q);
      out.push(...answer.runs);
      if (!answer.runs.length || out.length >= answer.total) return { total: answer.total, runs: out };
    }
  }

  async function refresh() {
    const mine = ++latest;
    const sweeping = state.view === "sweeps";
    const [answer, halving] = await Promise.all([sweeping ? fetchAll() : fetchPage(), sweeping ? get("/api/sweeps") : []]);
    if (mine !== latest) return;  // a newer sort or page was asked for meanwhile
    halvings = halving;
    rows = answer.runs;
    total = answer.total;
    draw();
  }

  function progressBar(p) {
    const fill = el("span", {});
    fill.style.width = Math.round(100 * (p || 0)) + "%";
    return fill;
  }

  poll(refresh);
})();

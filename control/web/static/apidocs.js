// The API's routes, read from the OpenAPI document the server generates (/openapi.json).
"use strict";
(() => {
  const { el, get, say } = gradq;
  const page = document.getElementById("page");
  page.prepend(el("h1", {}, "HTTP API"), el("p", {}, "The pages use these routes; the full OpenAPI document is ",
    el("a", { href: "/openapi.json" }, "/openapi.json"), ". Actions (POST) send the X-Gradq-Token header; ",
    el("a", { href: "/metrics" }, "/metrics"), " is in Prometheus' text format."));
  get("/openapi.json").then((doc) => {
    const rows = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const params = (op.parameters || []).map((p) => p.name + (p.required ? "" : "?")).join(", ");
        const body = op.requestBody ? Object.values(op.requestBody.content)[0].schema.$ref.split("/").pop() : "";
        rows.push(el("tr", {}, el("td", {}, method.toUpperCase()), el("td", {}, path), el("td", {}, params),
          el("td", {}, body), el("td", {}, op.summary || "")));
      }
    }
    page.append(el("table", {}, el("tr", {}, ["method", "path", "parameters", "body", "what"].map((h) => el("th", {}, h))), rows));
  }).catch((e) => say(e.message));
})();

// Shared by every page: the API client, safe element building (text only), formatting.
"use strict";

const gradq = (() => {
  let token = null;

  async function session() {
    const r = await fetch("/api/session");
    token = (await r.json()).token;
    return token;
  }

  async function get(path) {
    const r = await fetch(path);
    const body = await r.json();
    if (!r.ok) throw new Error(body.detail || r.statusText);
    return body;
  }

  async function act(path, body) {
    if (token === null) throw new Error("read only: open the URL with the token gradq ui printed");
    const r = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Gradq-Token": token },
      body: JSON.stringify(body || {}),
    });
    const out = await r.json();
    if (!r.ok) throw new Error(typeof out.detail === "string" ? out.detail : JSON.stringify(out.detail));
    return out;
  }

  // Every string lands in the page as text (textContent), never as markup.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  const pct = (x) => (x === null || x === undefined ? "-" : (100 * x).toFixed(1) + "%");
  const num = (x, d = 1) => (x === null || x === undefined ? "-" : Number(x).toFixed(d));

  function duration(s) {
    if (s === null || s === undefined) return "-";
    s = Math.round(s);
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m" + String(s % 60).padStart(2, "0") + "s";
    return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
  }

  function age(iso) {
    return duration((Date.now() - Date.parse(iso)) / 1000);
  }

  function status(s) {
    return el("span", { class: "status s-" + s }, s);
  }

  function say(text) {
    const m = document.getElementById("msg");
    if (m) m.textContent = text || "";
  }

  // Poll `fn` every `ms` while the page is visible; errors are shown, polling goes on.
  function poll(fn, ms = 2000) {
    async function tick() {
      if (!document.hidden) {
        try { await fn(); } catch (e) { say(e.message); }
      }
      setTimeout(tick, ms);
    }
    tick();
  }

  return { session, get, act, el, pct, num, duration, age, status, say, poll };
})();

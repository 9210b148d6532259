// Shared by every page: the API client, safe element building (text only), formatting.
"use strict";

const gradq = (() => {
  let token = null;

  async function session() {
    const r = await fetch("/api/session");
    token = (await r.json()).token;
    return token;
  }

  // An error answer's words: its detail when it is a string, else the HTTP status.
  function problem(r, body) {
    return body && typeof body.detail === "string" ? body.detail : `${r.status} ${r.statusText}`;
  }

  async function get(path) {
    const r = await fetch(path);
    const body = await r.json().catch(() => null);
    if (!r.ok) throw new Error(problem(r, body));
    return body;
  }

  async function act(path, body) {
    if (token === null) throw new Error("read only: open the URL with the token gradq ui printed");
    const r = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Gradq-Token": token },
      body: JSON.stringify(body || {}),
    });
    const out = await r.json().catch(() => null);
    if (!r.ok) throw new Error(problem(r, out));
    return out;
  }

  // Controls and bidi marks shown as escapes, as the CLI shows them (control/output.py `visible`):
  // C0 and C1 controls, DEL, line and paragraph separators, and bidirectional overrides, which
  // could reorder what is shown. Newlines and tabs stay: a note may hold lines.
  const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
  const NAMED = { "\r": "\\r" };

  function visible(text) {
    return String(text).replace(CONTROL, (c) => {
      const code = c.charCodeAt(0);
      return NAMED[c] || (code < 0x100 ? "\\x" + code.toString(16).padStart(2, "0")
        : "\\u" + code.toString(16).padStart(4, "0"));
    });
  }

  // Every string lands in the page as text (textContent), never as markup, and visible.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, k === "title" ? visible(v) : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(visible(c)));
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
    if (m) m.textContent = visible(text || "");
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

  return { session, get, act, el, visible, pct, num, duration, age, status, say, poll };
})();

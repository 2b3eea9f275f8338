// vsplade serve: the web page. Plain JS, no build step, no external resources.
"use strict";

const $ = (sel) => document.querySelector(sel);
// thumbnail widths per size choice (the service snaps them to its image_widths); "large"
// shows a page big enough to read its headings without opening it
const THUMB_WIDTHS = { small: 320, large: 640 };
const LARGE_WIDTH = 1280;
let hits = [];
let current = -1;
let currentQuery = "";

function setStatus(text, isError = false) {
  const el = $("#status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

// A service started with VSPLADE_SERVE_TOKEN answers 401 until the token is given; it is kept
// in a same-site cookie so that <img> requests carry it too.
function askToken() {
  const t = window.prompt("This vsplade service needs its access token (VSPLADE_SERVE_TOKEN):");
  if (!t) return false;
  document.cookie = "vsplade_token=" + encodeURIComponent(t.trim()) + "; path=/; SameSite=Strict";
  return true;
}

async function api(url, options = {}, retry = true) {
  const r = await fetch(url, { credentials: "same-origin", ...options });
  if (r.status === 401 && retry && askToken()) return api(url, options, false);
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) {
    let detail = body && body.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join("; ");
    throw new Error(detail || (r.status + " " + r.statusText));
  }
  return body;
}

function imageUrl(id, width) {
  return "/pages/" + encodeURIComponent(id) + "/image?width=" + width;
}

function fmt(x) {
  return Math.abs(x) >= 100 ? x.toFixed(1) : x.toFixed(3);
}

async function search(q, k, push = true) {
  q = q.trim();
  if (!q) return;
  if (push) {
    const u = new URL(window.location);
    u.searchParams.set("q", q);
    u.searchParams.set("k", k);
    if ($("#by-file").checked) u.searchParams.set("group_by", "file"); else u.searchParams.delete("group_by");
    if ($("#hybrid").checked) u.searchParams.set("hybrid", "rrf"); else u.searchParams.delete("hybrid");
    setSizeParam(u);
    history.pushState({ q, k }, "", u);
  }
  $("#start").hidden = true;
  document.title = q + " · vsplade";
  setStatus("Searching…");
  const list = $("#results");
  const byFile = $("#by-file").checked;
  const params = { q, k, explain: "true", snippet: "true" };
  if (byFile) Object.assign(params, { group_by: "file", pages_per_file: 3 });
  if ($("#hybrid").checked) params.hybrid = "rrf"; // vector + BM25 over the text layer
  try {
    const res = await api("/search?" + new URLSearchParams(params));
    // grouped: the files' pages in file order; a card that starts a file says so
    hits = byFile ? res.files.flatMap((f, n) => f.hits.map((h, j) => ({ ...h, fileRank: j ? 0 : n + 1 }))) : res.hits;
    currentQuery = q;
    list.replaceChildren();
    if (!hits.length) {
      setStatus("No pages match “" + q + "” (" + res.terms + " query terms).");
      return;
    }
    const what = byFile ? res.files.length + " documents (" + hits.length + " pages)" : hits.length + " pages";
    setStatus(what + " for “" + q + "” in " + res.took_ms.toFixed(1) + " ms" + (res.notice ? " · " + res.notice : ""));
    const tpl = $("#card");
    hits.forEach((h, i) => {
      const li = tpl.content.firstElementChild.cloneNode(true);
      li.dataset.id = h.id;
      if (h.fileRank) {
        li.classList.add("file-start");
        li.dataset.file = "#" + h.fileRank;
      }
      const img = li.querySelector("img");
      setThumb(img, h.id);
      img.alt = (h.source || h.id) + ", page " + h.page;
      img.addEventListener("error", () => {
        const box = img.parentElement;
        box.classList.add("failed");
        box.textContent = "page image unavailable";
      });
      li.querySelector(".source").textContent = h.source || h.id;
      li.querySelector(".source").title = h.source || h.id;
      li.querySelector(".page").textContent = h.page != null ? "page " + h.page : "";
      li.querySelector(".score").textContent = fmt(h.score);
      fillSnippet(li.querySelector(".snippet"), h.snippet);
      li.querySelector(".open").setAttribute("aria-label",
        "Hit " + (i + 1) + ": " + (h.source || h.id) + ", page " + h.page + ", score " + fmt(h.score));
      li.querySelector(".open").addEventListener("click", () => openHit(i));
      list.appendChild(li);
    });
  } catch (e) {
    list.replaceChildren();
    setStatus("Search failed: " + e.message, true);
  }
}

function thumbSize() {
  return $("#size").value === "large" ? "large" : "small";
}

function setThumb(img, id) {
  const w = THUMB_WIDTHS[thumbSize()];
  img.src = imageUrl(id, w);
  img.srcset = imageUrl(id, w) + " 1x, " + imageUrl(id, w * 2) + " 2x";
}

function setSizeParam(u) {
  if (thumbSize() === "large") u.searchParams.set("size", "large"); else u.searchParams.delete("size");
}

// The size choice applies at once: the grid's columns and the cards' pictures change, the
// URL keeps it (replaced, not a new history entry: it is a view setting, not a search).
function applySize() {
  $("#results").classList.toggle("large", thumbSize() === "large");
  document.querySelectorAll("#results .card").forEach((li) => {
    const img = li.querySelector("img");
    if (img) setThumb(img, li.dataset.id);
  });
}

// Before any query: the collection's size and example queries (from /info's "start", which
// the service computes once per index version) as chips that run the query.
let startLoaded = null;
function showStart() {
  $("#results").replaceChildren();
  $("#start").hidden = false;
  document.title = "vsplade search";
  setStatus("");
  if (startLoaded) return startLoaded;
  startLoaded = api("/info").then((info) => {
    const st = info.start || { pages: info.pages, files: info.files, examples: [] };
    const plural = (n, w) => n + " " + w + (n === 1 ? "" : "s");
    $("#start-size").textContent = "This collection holds " + plural(st.pages, "page") + " in " +
      plural(st.files, "file") + (info.engine ? " (" + info.engine + " index)" : "") + ".";
    const list = $("#examples");
    list.replaceChildren();
    (st.examples || []).forEach((q) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "chip";
      b.textContent = q;
      b.addEventListener("click", () => {
        $("#q").value = q;
        search(q, $("#k").value);
      });
      li.appendChild(b);
      list.appendChild(li);
    });
    $("#start-try").hidden = !(st.examples || []).length;
  }).catch((e) => {
    startLoaded = null;
    setStatus("Cannot read the collection: " + e.message, true);
  });
  return startLoaded;
}

// The snippet's text with its marked words as <mark>, built as DOM nodes (never innerHTML).
function fillSnippet(el, snippet) {
  el.replaceChildren();
  if (!snippet) {
    el.hidden = true;
    return;
  }
  let at = 0;
  for (const [s, e] of snippet.marks) {
    if (s > at) el.append(snippet.text.slice(at, s));
    const m = document.createElement("mark");
    m.textContent = snippet.text.slice(s, e);
    el.append(m);
    at = e;
  }
  if (at < snippet.text.length) el.append(snippet.text.slice(at));
  el.title = snippet.text;
  el.hidden = false;
}

// Boxes over the large view's picture, as percentages of it (the API gives fractions of the
// page), so they follow the picture at any size.
async function showHighlights(i, h) {
  const layer = $("#viewer-boxes");
  const where = $("#where");
  layer.replaceChildren();
  where.replaceChildren();
  if (!currentQuery) return;
  let hl;
  try {
    hl = await api("/pages/" + encodeURIComponent(h.id) + "/highlights?" + new URLSearchParams({ q: currentQuery }));
  } catch (e) {
    if (current === i) where.append(hintItem("Cannot mark the words: " + e.message));
    return;
  }
  if (current !== i) return;
  hl.boxes.forEach((b) => {
    const d = document.createElement("div");
    d.className = "hl " + (b.whole ? "whole" : "piece");
    const [x0, y0, x1, y1] = b.rel;
    d.style.left = (100 * x0) + "%";
    d.style.top = (100 * y0) + "%";
    d.style.width = (100 * (x1 - x0)) + "%";
    d.style.height = (100 * (y1 - y0)) + "%";
    d.title = b.text + (b.whole ? "" : " (holds a matched piece)");
    layer.appendChild(d);
  });
  const words = hl.boxes.length;
  where.append(hintItem(words ? words + " marked word" + (words === 1 ? "" : "s") + " on the page" : ""));
  if (hl.note) where.append(hintItem(hl.note));
  [...where.children].forEach((c) => { if (!c.textContent) c.remove(); });
}

function hintItem(text) {
  const li = document.createElement("li");
  li.className = "hint";
  li.textContent = text;
  return li;
}

function termRow(label, value, max, title) {
  const li = document.createElement("li");
  const tok = document.createElement("span");
  tok.className = "tok";
  tok.textContent = label;
  tok.title = title;
  const meter = document.createElement("span");
  meter.className = "meter";
  const bar = document.createElement("span");
  bar.style.width = (max > 0 ? Math.max(2, (100 * value) / max) : 0) + "%";
  meter.appendChild(bar);
  const val = document.createElement("span");
  val.className = "val";
  val.textContent = fmt(value);
  li.append(tok, meter, val);
  return li;
}

async function openHit(i) {
  if (i < 0 || i >= hits.length) return;
  current = i;
  const h = hits[i];
  const dlg = $("#viewer");
  $("#viewer-title").textContent = (h.source || h.id) + (h.page != null ? " · page " + h.page : "");
  $("#viewer-meta").textContent = "#" + (i + 1) + " · score " + fmt(h.score) + " · id " + h.id;
  const img = $("#viewer-img");
  img.hidden = false;
  $("#viewer-img-error").hidden = true;
  img.src = imageUrl(h.id, LARGE_WIDTH);
  img.alt = (h.source || h.id) + ", page " + h.page;
  showHighlights(i, h);
  const matched = $("#matched");
  matched.replaceChildren();
  const ex = h.explain || [];
  // per query word (its pieces put back together), where the service gives reasons
  const words = (h.reasons || []).filter((r) => r.matched_pieces.length);
  if (words.length) {
    const top = Math.max(...words.map((r) => r.contribution));
    words.forEach((r) => matched.appendChild(termRow(
      r.word + (r.whole ? "" : " (partly: " + r.matched_pieces.join("+") + ")"), r.contribution, top,
      Math.round(100 * r.share) + "% of the score; pieces " + r.pieces.join("+"))));
  } else {
    const max = ex.length ? ex[0].contribution : 0;
    ex.forEach((t) => matched.appendChild(termRow(t.token, t.contribution, max, t.term)));
  }
  if (!words.length && h.matched_terms > ex.length) {
    const li = document.createElement("li");
    li.className = "hint";
    li.textContent = "… and " + (h.matched_terms - ex.length) + " more";
    matched.appendChild(li);
  }
  if (!ex.length) matched.innerHTML = "<li class='hint'>no term breakdown from this engine</li>";
  if (!dlg.open) dlg.showModal();
  const pageTerms = $("#page-terms");
  pageTerms.replaceChildren();
  try {
    const info = await api("/pages/" + encodeURIComponent(h.id) + "?terms=24");
    if (current !== i) return;
    const terms = info.top_terms;
    $("#page-terms-title").hidden = !terms;
    // "Ġdebian" (word start) and "debian" (inside a word) read the same: show the text once
    const shown = new Set();
    (terms || []).filter((t) => !shown.has(t.token) && shown.add(t.token)).forEach((t) => {
      const li = document.createElement("li");
      li.textContent = t.token;
      li.title = t.term + " " + fmt(t.weight);
      pageTerms.appendChild(li);
    });
  } catch (e) {
    $("#page-terms-title").hidden = true;
  }
}

function closeViewer() {
  const dlg = $("#viewer");
  if (dlg.open) dlg.close();
  const card = document.querySelectorAll("#results .open")[current];
  if (card) card.focus();
}

document.addEventListener("DOMContentLoaded", () => {
  const form = $("#search");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    search($("#q").value, $("#k").value);
  });
  $("#close").addEventListener("click", closeViewer);
  // a page that cannot be shown (file moved or changed, or an engine that does not record
  // files): say why instead of a broken picture
  $("#viewer-img").addEventListener("error", async () => {
    const img = $("#viewer-img");
    const box = $("#viewer-img-error");
    let why = "The page image is unavailable.";
    try {
      const r = await fetch(img.src, { credentials: "same-origin" });
      const body = await r.json();
      if (body && body.detail) why = "The page image is unavailable: " + body.detail;
    } catch (e) { /* keep the generic text */ }
    img.hidden = true;
    box.textContent = why;
    box.hidden = false;
  });
  $("#prev").addEventListener("click", () => openHit(current - 1));
  $("#next").addEventListener("click", () => openHit(current + 1));
  $("#viewer").addEventListener("click", (ev) => { if (ev.target === ev.currentTarget) closeViewer(); });
  document.addEventListener("keydown", (ev) => {
    const dlg = $("#viewer");
    if (dlg.open) {
      if (ev.key === "ArrowLeft") { ev.preventDefault(); openHit(current - 1); }
      if (ev.key === "ArrowRight") { ev.preventDefault(); openHit(current + 1); }
      return;
    }
    if (ev.key === "/" && document.activeElement !== $("#q")) {
      ev.preventDefault();
      $("#q").focus();
      $("#q").select();
    }
  });
  $("#size").addEventListener("change", () => {
    applySize();
    const u = new URL(window.location);
    setSizeParam(u);
    history.replaceState(history.state, "", u);
  });
  window.addEventListener("popstate", () => load(false));
  load(false);
});

function load(push) {
  const p = new URLSearchParams(window.location.search);
  const q = p.get("q");
  const k = p.get("k");
  if (k && [...$("#k").options].some((o) => o.value === k)) $("#k").value = k;
  $("#by-file").checked = p.get("group_by") === "file";
  $("#hybrid").checked = !!p.get("hybrid");
  $("#size").value = p.get("size") === "large" ? "large" : "small";
  applySize();
  if (q) {
    $("#q").value = q;
    search(q, $("#k").value, push);
  } else {
    $("#q").value = "";
    showStart();
  }
}

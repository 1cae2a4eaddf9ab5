// The reviewer page's script: review.html.j2 inlines it, and its sha256 is the only script the page's CSP allows.
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("review-data").textContent);
  var LETTERS = DATA.letters;
  var STORE_PREFIX = "llm_extract.review.v1.";
  var memoryStore = {};
  var state = { letter: null, target: null, tab: "review", openForm: null };

  // ---- tiny DOM helper: text always goes through textContent, never innerHTML ----
  function h(tag, attrs) {
    var el = document.createElement(tag);
    if (attrs) for (var k in attrs) {
      if (!Object.prototype.hasOwnProperty.call(attrs, k) || attrs[k] == null || attrs[k] === false) continue;
      if (k === "text") el.textContent = attrs[k];
      else if (k === "cls") el.className = attrs[k];
      else if (k.slice(0, 2) === "on") el.addEventListener(k.slice(2), attrs[k]);
      else el.setAttribute(k, attrs[k] === true ? "" : attrs[k]);
    }
    function add(c) {  // children: nodes, strings, or (nested) arrays of them
      if (c == null || c === false) return;
      if (Array.isArray(c)) c.forEach(add);
      else el.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    for (var i = 2; i < arguments.length; i++) add(arguments[i]);
    return el;
  }
  function $(id) { return document.getElementById(id); }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }
  function toast(msg) { var t = $("toast"); t.textContent = msg; t.classList.add("show"); clearTimeout(toast.t); toast.t = setTimeout(function () { t.classList.remove("show"); }, 1800); }

  // ---- verdict storage (localStorage keyed by the letter's sha256) ----
  function storageGet(key) { try { return window.localStorage.getItem(key); } catch (e) { return memoryStore[key] || null; } }
  function storageSet(key, value) { try { window.localStorage.setItem(key, value); } catch (e) { memoryStore[key] = value; } }
  function verdictsOf(L) { try { return JSON.parse(storageGet(STORE_PREFIX + L.sha256) || "{}") || {}; } catch (e) { return {}; } }
  function saveVerdict(L, t, v) {
    var all = verdictsOf(L);
    if (v) { v.at = new Date().toISOString(); all[t.id] = v; } else delete all[t.id];
    storageSet(STORE_PREFIX + L.sha256, JSON.stringify(all));
    renderQueue(); renderProgress();
  }
  function reviewedCount(L) { var v = verdictsOf(L); return L.targets.filter(function (t) { return v[t.id]; }).length; }

  function exportList() {
    var out = [];
    LETTERS.forEach(function (L) {
      var v = verdictsOf(L);
      L.targets.forEach(function (t) {
        var x = v[t.id]; if (!x) return;
        var field = x.verdict === "correct" ? x.field : t.field;
        var letterField = field.indexOf(".") >= 0;
        var item = letterField ? null : t.verdict_item;
        if (x.verdict === "correct" && field === "item" && t.kind === "extra_item") item = null;
        out.push({
          letter: L.verdict_letter, sha256: L.sha256, source: L.name,
          item: item, item_index: t.item_index, field: field, verdict: x.verdict,
          value: x.verdict === "correct" ? x.value : null, note: x.note || "",
          flag: t.type === "flag" ? t.code : null, kind: t.type === "mismatch" ? t.kind : null,
          target: t.id, message: t.message, reviewed_at: x.at || null
        });
      });
    });
    return out;
  }
  function exportText() { return JSON.stringify(exportList(), null, 2) + "\n"; }
  function download() {
    var blob = new Blob([exportText()], { type: "application/json" });
    var a = h("a", { href: URL.createObjectURL(blob), download: "verdicts.json" });
    document.body.appendChild(a); a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    toast(exportList().length + " verdict(s) exported");
  }
  function openExport() { $("export-json").value = exportText(); $("export").classList.remove("hidden"); $("export-json").focus(); $("export-json").select(); }

  // ---- queue ----
  function backendOf(L) { return L.backend || "(none)"; }
  function countBy(fn) { var c = {}; LETTERS.forEach(function (L) { fn(L).forEach(function (k) { c[k] = (c[k] || 0) + 1; }); }); return c; }
  function fillSelect(sel, label, counts) {
    clear(sel);
    sel.appendChild(h("option", { value: "", text: "all " + label + " (" + LETTERS.length + ")" }));
    Object.keys(counts).sort().forEach(function (k) { sel.appendChild(h("option", { value: k, text: k + " (" + counts[k] + ")" })); });
  }
  function filtered() {
    var code = $("f-code").value, dec = $("f-decision").value, be = $("f-backend").value;
    return LETTERS.filter(function (L) {
      if (code === "__mismatch") { if (!L.counts.mismatch) return false; }
      else if (code && L.codes.indexOf(code) < 0) return false;
      if (dec && L.decisions.indexOf(dec) < 0) return false;
      if (be && backendOf(L) !== be) return false;
      return true;
    });
  }
  function renderQueue() {
    var list = $("queue-list"), shown = filtered();
    clear(list);
    $("queue-count").textContent = shown.length + " of " + LETTERS.length + " letters · by severity";
    shown.forEach(function (L) {
      var c = L.counts, badges = [];
      if (L.problem) badges.push(h("span", { cls: "badge " + L.problem.kind, text: L.problem.kind === "failed" ? "failed: " + L.problem.code : "unreadable record" }));
      else if (c.error) badges.push(h("span", { cls: "badge error", text: c.error + " error" + (c.error > 1 ? "s" : "") }));
      if (c.warning) badges.push(h("span", { cls: "badge warning", text: c.warning + " warning" + (c.warning > 1 ? "s" : "") }));
      if (c.info) badges.push(h("span", { cls: "badge info", text: c.info + " info" }));
      if (c.mismatch) badges.push(h("span", { cls: "badge mismatch", text: c.mismatch + " mismatch" + (c.mismatch > 1 ? "es" : "") }));
      if (!badges.length) badges.push(h("span", { cls: "badge ok", text: "clean" }));
      if (!L.has_text && !L.problem) badges.push(h("span", { cls: "badge", text: "no text" }));
      var done = reviewedCount(L), total = L.targets.length;
      list.appendChild(h("div", { cls: "qi" + (state.letter === L ? " sel" : ""), role: "option", "data-key": L.key, "data-severity": L.severity, title: L.name,
        onclick: function () { selectLetter(L, null); } },
        h("span", { cls: "dot " + L.severity }),
        h("span", { cls: "fname", text: L.file }),
        total ? h("span", { cls: "done" + (done === total ? " all" : ""), text: done + "/" + total }) : h("span"),
        h("div", { cls: "meta" }, badges, L.problem ? null : h("span", { text: L.items.length + " item" + (L.items.length === 1 ? "" : "s") }))));
    });
  }
  function renderProgress() {
    var done = 0, total = 0;
    LETTERS.forEach(function (L) { done += reviewedCount(L); total += L.targets.length; });
    $("progress").textContent = done + " / " + total + " reviewed";
  }

  // ---- letter text with highlights ----
  var TIER = { none: 0, fuzzy: 1, normalized: 2, exact: 3 };
  function segClasses(L, ids) {
    var cls = ["hl"], tier = null, hasQuote = false, hasCite = false;
    ids.forEach(function (id) {
      var s = L.spans[id]; if (!s) return;
      if (s.kind === "quote" || s.kind === "cite") {
        if (tier === null || TIER[s.tier] < TIER[tier]) tier = s.tier;
        if (s.kind === "quote") hasQuote = true; else hasCite = true;
      } else if (s.kind === "heading") cls.push("k-heading");
      else if (s.kind === "flag") cls.push("k-flag", "sev-" + s.severity);
      else if (s.kind === "mismatch") cls.push("k-mm");
      else if (s.kind === "rationale") cls.push("k-rat");
      else if (s.kind === "evidence") cls.push("k-ev");
    });
    if (tier) cls.push("tier-" + tier);
    if (hasCite && !hasQuote) cls.push("k-cite");
    return cls.join(" ");
  }
  function appendText(parent, text) {
    // U+FFFE marks a line-end hyphenation in these PDFs: kept in the text, drawn as a grey hyphen
    text.split("\uFFFE").forEach(function (piece, i) {
      if (i > 0) parent.appendChild(h("span", { cls: "hy", title: "U+FFFE hyphenation mark", text: "\uFFFE" }));
      if (piece) parent.appendChild(document.createTextNode(piece));
    });
  }
  function renderText(L) {
    var box = $("text"); clear(box);
    var notice = $("notice");
    if (L.notice) { notice.textContent = L.notice; notice.classList.remove("hidden"); } else notice.classList.add("hidden");
    if (!L.has_text) {
      var why = !L.problem ? "The letter text is not available." : L.problem.kind === "failed" ? "This letter could not be extracted: there is no result to review." : "This record could not be read: there is no result to review.";
      box.appendChild(h("div", { cls: "empty-doc", text: why })); return;
    }
    var page = 1, frag = document.createDocumentFragment();
    L.segments.forEach(function (seg) {
      var text = seg[0], ids = seg[1], soft = seg[2];
      var parts = text.split("\f");
      var parent = ids.length ? h("span", { cls: segClasses(L, ids), "data-s": ids.join(" ") }) : frag;
      parts.forEach(function (p, i) {
        if (i > 0) { page += 1; parent.appendChild(h("span", { cls: "pb", "data-page": String(page) })); }
        if (p) appendText(soft ? parent.appendChild(h("span", { cls: "soft" })) : parent, p);
      });
      if (parent !== frag) frag.appendChild(parent);
    });
    box.appendChild(frag);
    $("text-wrap").scrollTop = 0;
  }
  function highlight(spanId, kind, scroll) {
    document.querySelectorAll("#text .hl.active").forEach(function (el) { el.classList.remove("active", "pulse", "act-error", "act-warning", "act-mismatch", "act-info", "act-evidence"); });
    if (!spanId) return null;
    var els = document.querySelectorAll('#text [data-s~="' + spanId + '"]');
    els.forEach(function (el) { el.classList.add("active", "pulse"); if (kind) el.classList.add("act-" + kind); });
    if (els.length && scroll !== false) els[0].scrollIntoView({ block: "center", inline: "nearest" });
    return els.length ? els[0] : null;
  }

  // ---- evidence: where the letter states each value (Determination.evidence) ----
  function hasEvidence(L, path) { return !!(L.evidence && L.evidence[path]); }
  function showEvidence(L, path, el) {
    document.querySelectorAll(".evf.on").forEach(function (x) { x.classList.remove("on"); });
    if (el) el.classList.add("on");
    var sid = L.evidence ? L.evidence[path] : null;
    if (!sid) { highlight(null); toast("no evidence in the letter for " + path); return null; }
    if (!L.has_text) { toast("the letter text is not available"); return null; }
    return highlight(sid, "evidence", true);
  }
  // A value the page can show the evidence of: click it to scroll to where the letter states it.
  function evField(L, path, text, cls) {
    var found = hasEvidence(L, path);
    return h("span", { cls: "evf" + (found ? "" : " noev") + (cls ? " " + cls : ""), "data-path": path, tabindex: "0",
      title: found ? path + ": click to show where the letter states it" : path + ": no evidence in the letter",
      onclick: function (e) { e.stopPropagation(); showEvidence(L, path, e.currentTarget); },
      onkeydown: function (e) { if (e.key === "Enter") { e.stopPropagation(); showEvidence(L, path, e.currentTarget); } } }, text);
  }

  // ---- side panel: review targets ----
  function fieldValue(L, t, field) {
    if (field.indexOf(".") >= 0) return L.letter_fields[field];
    if (t.type === "mismatch" && t.kind === "extra_item" && field === "item" && t.item_index != null) {
      var f = L.items[t.item_index].fields, o = {};
      DATA.item_fields.forEach(function (k) { o[k] = f[k]; });
      return o;
    }
    if (t.type === "mismatch" && t.field === field && t.gold != null && field.indexOf("guideline") < 0 && field !== "item") return t.predicted;
    if (t.item_index == null || !L.items[t.item_index]) return null;
    return L.items[t.item_index].fields[field];
  }
  function showValue(v) { return typeof v === "string" ? v : JSON.stringify(v, null, 1); }
  function parseValue(s) { var x = s.trim(); if (x === "") return null; try { return JSON.parse(x); } catch (e) { return s; } }

  function renderTargets(L) {
    var box = $("targets"); clear(box);
    $("n-review").textContent = L.targets.length ? "(" + L.targets.length + ")" : "";
    if (L.problem) {
      box.appendChild(h("div", { cls: "tg problem", "data-problem": L.problem.kind },
        h("div", { cls: "row1" },
          h("span", { cls: "badge " + L.problem.kind, text: L.problem.kind }),
          h("span", { cls: "code", text: L.problem.code }),
          h("span", { cls: "itm", text: L.problem.where })),
        h("div", { cls: "msg", text: L.problem.message }),
        h("div", { cls: "ctx", text: L.problem.kind === "failed" ? "Fix the letter (or the limit it hit) and extract it again; the result then replaces this record." : "Extract the letter again with this version to review it." })));
      return;
    }
    if (!L.targets.length) { box.appendChild(h("p", { cls: "hint", text: "No flags or mismatches for this letter: nothing to review." })); return; }
    var v = verdictsOf(L);
    L.targets.forEach(function (t, i) {
      var saved = v[t.id];
      var item = t.item_index != null && L.items[t.item_index] ? "item " + (t.item_index + 1) + ": " + L.items[t.item_index].item : (t.verdict_item ? "item: " + t.verdict_item : "letter");
      var card = h("div", { cls: "tg" + (state.target === t ? " sel" : ""), "data-target": t.id, "data-index": String(i), tabindex: "0",
        onclick: function (e) { if (e.target.closest("button, select, textarea, input, label")) return; selectTarget(L, t, true); } },
        h("div", { cls: "row1" },
          h("span", { cls: "badge " + t.severity, text: t.type === "flag" ? t.severity : "mismatch" }),
          h("span", { cls: "code", text: t.type === "flag" ? t.code : t.kind }),
          h("span", { cls: "itm", text: item })),
        h("div", { cls: "msg", text: t.message }),
        t.context ? h("div", { cls: "ctx", text: t.context }) : null,
        !t.span ? h("div", { cls: "nospan", text: "no location in the letter" }) : (!t.span_exact && t.type === "flag" ? h("div", { cls: "nospan", text: "no exact span: shows the item's rationale" }) : null));
      var bar = h("div", { cls: "vbar" });
      ["accept", "reject", "correct"].forEach(function (kind) {
        bar.appendChild(h("button", { type: "button", cls: kind + (saved && saved.verdict === kind ? " on" : ""), "data-verdict": kind,
          text: kind.charAt(0).toUpperCase() + kind.slice(1),
          onclick: function () { selectTarget(L, t, false); verdict(L, t, kind); } }));
      });
      if (saved) bar.appendChild(h("button", { type: "button", cls: "clear", text: "clear", onclick: function () { saveVerdict(L, t, null); renderTargets(L); } }));
      bar.appendChild(h("span", { cls: "state", text: saved ? "saved" : "" }));
      card.appendChild(bar);
      if (saved && saved.verdict === "correct" && state.openForm !== t.id) {
        card.appendChild(h("div", { cls: "saved-val", text: saved.field + " = " + JSON.stringify(saved.value) + (saved.note ? " · " + saved.note : "") }));
      } else if (saved && saved.note && saved.verdict !== "correct") {
        card.appendChild(h("div", { cls: "saved-val", text: saved.note }));
      }
      if (state.openForm === t.id) card.appendChild(correctForm(L, t, saved));
      box.appendChild(card);
    });
  }
  function correctForm(L, t, saved) {
    var fieldSel = h("select", { cls: "c-field", "aria-label": "field" });
    DATA.verdict_fields.forEach(function (f) { fieldSel.appendChild(h("option", { value: f, text: f })); });
    var field = saved && saved.verdict === "correct" ? saved.field : t.field;
    fieldSel.value = field;
    var val = h("textarea", { cls: "c-value", "aria-label": "value", spellcheck: "false" });
    var start = saved && saved.verdict === "correct" ? saved.value : fieldValue(L, t, field);
    val.value = start == null ? "" : showValue(start);
    val.rows = Math.min(12, Math.max(2, val.value.split("\n").length));
    fieldSel.addEventListener("change", function () { var x = fieldValue(L, t, fieldSel.value); val.value = x == null ? "" : showValue(x); });
    var note = h("input", { cls: "c-note", type: "text", "aria-label": "note", placeholder: "why (optional)", value: saved && saved.note ? saved.note : "" });
    function save() {
      saveVerdict(L, t, { verdict: "correct", field: fieldSel.value, value: parseValue(val.value), note: note.value });
      state.openForm = null; renderTargets(L); toast("verdict saved");
    }
    return h("div", { cls: "cform", onkeydown: function (e) { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) save(); if (e.key === "Escape") { state.openForm = null; renderTargets(L); } } },
      h("label", null, "Gold field", fieldSel),
      h("label", null, "Correct value (JSON, or plain text; empty = null)", val),
      h("label", null, "Note", note),
      h("div", { cls: "btns" },
        h("button", { type: "button", cls: "plain", text: "Cancel", onclick: function () { state.openForm = null; renderTargets(L); } }),
        h("button", { type: "button", cls: "c-save", text: "Save correction", onclick: save })));
  }
  function verdict(L, t, kind) {
    if (kind === "correct") { state.openForm = t.id; renderTargets(L); var ta = document.querySelector('.tg.sel .c-value'); if (ta) { ta.focus(); ta.setSelectionRange(0, 0); ta.scrollTop = 0; } return; }
    var prev = verdictsOf(L)[t.id];
    saveVerdict(L, t, { verdict: kind, field: t.field, value: null, note: prev && prev.note && prev.verdict !== "correct" ? prev.note : "" });
    state.openForm = null; renderTargets(L);
  }

  // ---- side panel: items and gold ----
  function renderItems(L) {
    var pane = $("pane-items"); clear(pane);
    $("n-items").textContent = "(" + L.items.length + ")";
    if (!L.items.length) { pane.appendChild(h("p", { cls: "hint", text: "No items were extracted." })); return; }
    var tbody = h("tbody");
    L.items.forEach(function (it) {
      var cites = it.citations.map(function (c) {
        return h("span", { cls: "cite tier-" + c.match, title: c.match + (c.match === "fuzzy" ? " (" + Math.round(c.score) + ")" : "") + ": " + c.text,
          onclick: function (e) { e.stopPropagation(); if (c.span) highlight(c.span, null); } }, h("span", { cls: "by", text: c.by }), c.label || c.text);
      });
      var n = 0;
      var quotes = it.quotes.map(function (q) {
        var label = q.role === "conclusion" ? "conclusion" : "q" + (++n);
        return h("span", { cls: "qchip tier-" + q.match + (q.role === "conclusion" ? " concl" : ""), title: q.text, text: label + " " + (q.match === "none" ? "not found" : q.match),
          onclick: function (e) { e.stopPropagation(); if (q.span) highlight(q.span, null); } });
      });
      var missing = it.quotes.filter(function (q) { return q.match === "none"; }).map(function (q) { return h("div", { cls: "nf", text: "not found: “" + q.text + "”" }); });
      var base = "items." + it.index + ".";
      var partial = it.original_request ? h("div", { cls: "summary" }, "original: ", evField(L, base + "original_request", it.original_request),
        it.authorized ? [" · authorized: ", evField(L, base + "authorized", it.authorized)] : null) : null;
      var request = [];
      if (it.category) request.push(evField(L, base + "category", it.category));
      if (it.subcategory) request.push(" › ", evField(L, base + "subcategory", it.subcategory));
      if (it.drug) {
        request.push(" · drug ", evField(L, base + "drug.as_written", it.drug.as_written));
        if (it.drug.name) request.push(" = ", evField(L, base + "drug.name", it.drug.name));
        ["strength", "form", "quantity", "amount", "refills", "supply_days"].forEach(function (k) {
          if (it.drug[k] != null) request.push(" ", evField(L, base + "drug." + k, (k === "quantity" ? "#" : "") + it.drug[k] + (k === "supply_days" ? " days" : k === "refills" ? " refills" : "")));
        });
      }
      var select = function () { selectItem(L, it); };
      tbody.appendChild(h("tr", { cls: "it head", "data-item": String(it.index), onclick: select },
        h("td", { cls: "num", rowspan: "2", text: String(it.index + 1) }),
        h("td", null, h("div", { cls: "iname" }, evField(L, base + "item", it.item)), partial,
          request.length ? h("div", { cls: "req" }, request) : null),
        h("td", null, evField(L, base + "decision", it.decision || "none", "dec " + (it.decision || "none"))),
        h("td", null, cites)));
      tbody.appendChild(h("tr", { cls: "it body", "data-item": String(it.index), onclick: select },
        h("td", { colspan: "3" }, h("div", { cls: "summary", text: it.rationale_summary || "(no rationale summary)" }), h("div", { cls: "quotes" }, quotes), missing)));
    });
    pane.appendChild(h("table", { cls: "grid items" },
      h("colgroup", null, h("col", { style: "width:24px" }), h("col", { style: "width:34%" }), h("col", { style: "width:86px" }), h("col")),
      h("thead", null, h("tr", null, h("th", { text: "#" }), h("th", { text: "Item" }), h("th", { text: "Decision" }), h("th", { text: "Citations" }))),
      tbody));
  }
  function cmpTable(rows) {
    return h("table", { cls: "grid cmp" },
      h("colgroup", null, h("col", { style: "width:112px" }), h("col"), h("col")),
      h("thead", null, h("tr", null, h("th", { text: "field" }), h("th", { text: "gold" }), h("th", { text: "predicted" }))),
      h("tbody", null, rows.map(function (r) {
        return h("tr", { cls: r.diff ? "diff" : "" }, h("td", { cls: "f", text: r.field }), h("td", { cls: "g", text: r.gold || "—" }), h("td", { cls: "p", text: r.pred || "—" }));
      })));
  }
  function renderGold(L) {
    var pane = $("pane-gold"); clear(pane);
    var G = L.gold;
    if (!G) { pane.appendChild(h("p", { cls: "hint", text: DATA.has_gold ? "No gold file for this letter (matched by file name)." : "No gold given: run with --gold evals/gold to compare." })); return; }
    var diffs = G.letter_rows.filter(function (r) { return r.diff; }).length;
    G.items.forEach(function (gi) { diffs += gi.rows.filter(function (r) { return r.diff; }).length + (gi.missing ? 1 : 0); });
    diffs += G.extra.length;
    pane.appendChild(h("div", { cls: "gold-meta", text: "gold " + G.letter + " · labelled by " + (G.labeller || "?") + " · " + diffs + " difference" + (diffs === 1 ? "" : "s") + (G.notes ? " · " + G.notes : "") }));
    G.items.forEach(function (gi, n) {
      var d = gi.rows.filter(function (r) { return r.diff; }).length;
      pane.appendChild(h("div", { cls: "gold-item" },
        h("h4", { onclick: function () { if (gi.pred_index != null) selectItem(L, L.items[gi.pred_index]); } },
          "Gold item " + (n + 1) + ": " + gi.heading,
          gi.missing ? h("span", { cls: "badge error", text: "not extracted" }) : (d ? h("span", { cls: "badge mismatch", text: d + " differ" }) : h("span", { cls: "badge ok", text: "match" }))),
        cmpTable(gi.rows)));
    });
    G.extra.forEach(function (x) {
      pane.appendChild(h("div", { cls: "gold-item" }, h("h4", { onclick: function () { selectItem(L, L.items[x.pred_index]); } }, "Predicted only: " + x.heading, h("span", { cls: "badge error", text: "not in gold" }))));
    });
    if (G.letter_rows.length) pane.appendChild(h("div", { cls: "gold-item" }, h("h4", { text: "Letter: case, reviewer, patient" }), cmpTable(G.letter_rows)));
  }

  function renderDetails(L) {
    var t = $("details"); clear(t);
    var body = h("tbody");
    Object.keys(L.letter_fields).forEach(function (f) {
      var v = L.letter_fields[f];
      if (v == null || (Array.isArray(v) && !v.length)) return;
      var shown = Array.isArray(v)
        ? v.map(function (x, i) { return [i ? ", " : "", evField(L, f + "." + i, String(x))]; })
        : evField(L, f, String(v));
      body.appendChild(h("tr", null, h("td", { cls: "f", text: f }), h("td", null, shown)));
    });
    if ((L.diagnoses || []).length) {
      body.appendChild(h("tr", null, h("td", { cls: "f", text: "diagnoses" }),
        h("td", null, L.diagnoses.map(function (d, i) { return [i ? "; " : "", evField(L, "diagnoses." + i, d)]; }))));
    }
    if (!body.firstChild) body.appendChild(h("tr", null, h("td", { text: "No header fields were extracted." })));
    t.appendChild(body);
  }

  // ---- selection and navigation ----
  function renderLetter(L) {
    var title = $("doc-title"); clear(title);
    title.appendChild(h("span", { text: L.file }));
    if (L.problem) {
      title.appendChild(h("span", { cls: "sub", text: L.problem.kind === "failed" ? "extraction failed: " + L.problem.code : "unreadable record" }));
      $("doc-meta").title = L.problem.where;
      $("doc-meta").textContent = [L.problem.where].concat(L.sha256 ? ["sha256 " + L.sha256.slice(0, 10) + "…"] : []).join(" · ");
      renderText(L); renderTargets(L); renderItems(L); renderGold(L); renderDetails(L);
      return;
    }
    if (L.case_number && L.case_number !== L.file.replace(/\.[^.]*$/, "")) title.appendChild(h("span", { cls: "sub", text: L.case_number }));
    title.appendChild(h("span", { cls: "sub", text: L.items.length + " item" + (L.items.length === 1 ? "" : "s") + " · " + L.pages + " page" + (L.pages === 1 ? "" : "s") }));
    $("doc-meta").title = L.name;
    $("doc-meta").textContent = ["layout " + L.layout, "backend " + L.backend + (L.model ? " (" + L.model + ")" : ""), "sha256 " + L.sha256.slice(0, 10) + "…", L.name].join(" · ");
    renderText(L); renderTargets(L); renderItems(L); renderGold(L); renderDetails(L);
  }
  function selectLetter(L, target) {
    if (state.letter !== L) { state.letter = L; state.target = null; state.openForm = null; renderLetter(L); renderQueue(); }
    var sel = document.querySelector('.qi[data-key="' + L.key + '"]'); if (sel) sel.scrollIntoView({ block: "nearest" });
    try { history.replaceState(null, "", "#" + encodeURIComponent(L.key)); } catch (e) { /* file:// in some browsers */ }
    if (target) selectTarget(L, target, true);
  }
  function selectTarget(L, t, scroll) {
    state.target = t;
    document.querySelectorAll(".tg.sel").forEach(function (el) { el.classList.remove("sel"); });
    var card = document.querySelector('.tg[data-target="' + CSS.escape(t.id) + '"]');
    if (card) { card.classList.add("sel"); if (scroll) card.scrollIntoView({ block: "nearest" }); }
    highlight(t.span, t.type === "mismatch" ? "mismatch" : t.severity, true);
  }
  function selectItem(L, it) {
    document.querySelectorAll("tr.it.sel").forEach(function (el) { el.classList.remove("sel"); });
    var row = document.querySelector('tr.it[data-item="' + it.index + '"]'); if (row) row.classList.add("sel");
    highlight(it.target, null, true);
    if (it.rationale_span && it.rationale_span !== it.target) document.querySelectorAll('#text [data-s~="' + it.rationale_span + '"]').forEach(function (el) { el.classList.add("active"); });
  }
  function showTab(name) {
    state.tab = name;
    document.querySelectorAll("#tabs button").forEach(function (b) { b.classList.toggle("on", b.getAttribute("data-tab") === name); });
    ["review", "items", "gold"].forEach(function (n) { $("pane-" + n).classList.toggle("hidden", n !== name); });
  }
  function step(dir) {
    var shown = filtered(); if (!shown.length) return;
    var L = state.letter && shown.indexOf(state.letter) >= 0 ? state.letter : shown[0];
    if (state.letter !== L) { selectLetter(L, null); }
    var i = state.target ? L.targets.indexOf(state.target) : -1;
    var j = dir > 0 ? i + 1 : (i < 0 ? L.targets.length - 1 : i - 1);
    if (state.tab !== "review") showTab("review");
    if (j >= 0 && j < L.targets.length) { selectTarget(L, L.targets[j], true); return; }
    // off the end of this letter: the next (previous) letter in the queue that has something to review
    var li = shown.indexOf(L);
    for (var k = li + dir; k >= 0 && k < shown.length; k += dir) {
      if (shown[k].targets.length) { selectLetter(shown[k], dir > 0 ? shown[k].targets[0] : shown[k].targets[shown[k].targets.length - 1]); return; }
    }
    toast(dir > 0 ? "last flag in the queue" : "first flag in the queue");
  }

  // ---- wiring ----
  fillSelect($("f-code"), "flags", countBy(function (L) { return L.codes; }));
  var mmLetters = LETTERS.filter(function (L) { return L.counts.mismatch; }).length;
  if (mmLetters) $("f-code").appendChild(h("option", { value: "__mismatch", text: "eval mismatches (" + mmLetters + ")" }));
  fillSelect($("f-decision"), "decisions", countBy(function (L) { return L.decisions; }));
  fillSelect($("f-backend"), "backends", countBy(function (L) { return [backendOf(L)]; }));
  ["f-code", "f-decision", "f-backend"].forEach(function (id) {
    $(id).addEventListener("change", function () { renderQueue(); var shown = filtered(); if (shown.length && shown.indexOf(state.letter) < 0) selectLetter(shown[0], null); });
  });
  $("reflow").addEventListener("change", function () { $("text").classList.toggle("reflow", $("reflow").checked); });
  document.querySelectorAll("#tabs button").forEach(function (b) { b.addEventListener("click", function () { showTab(b.getAttribute("data-tab")); }); });
  $("btn-export").addEventListener("click", download);
  $("btn-download").addEventListener("click", download);
  $("btn-copy").addEventListener("click", openExport);
  $("btn-close").addEventListener("click", function () { $("export").classList.add("hidden"); });
  $("export").addEventListener("click", function (e) { if (e.target === $("export")) $("export").classList.add("hidden"); });
  $("btn-clip").addEventListener("click", function () {
    var ta = $("export-json"); ta.focus(); ta.select();
    var done = function () { toast("copied"); };
    if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(ta.value).then(done, function () { document.execCommand("copy"); done(); });
    else { document.execCommand("copy"); done(); }
  });
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var tag = (e.target && e.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    if (e.key === "Escape") { $("export").classList.add("hidden"); return; }
    if (!$("export").classList.contains("hidden")) return;
    var k = e.key;
    if (k === "j" || k === "n") { step(1); e.preventDefault(); }
    else if (k === "k" || k === "p") { step(-1); e.preventDefault(); }
    else if ((k === "a" || k === "r" || k === "c") && state.letter && state.target) {
      verdict(state.letter, state.target, { a: "accept", r: "reject", c: "correct" }[k]); e.preventDefault();
      if (k !== "c") selectTarget(state.letter, state.target, false);
    }
  });

  renderProgress();
  var start = null, hash = decodeURIComponent((location.hash || "").slice(1));
  LETTERS.forEach(function (L) { if (L.key === hash) start = L; });
  if (LETTERS.length) selectLetter(start || LETTERS[0], null);
  else { renderQueue(); $("text").appendChild(h("div", { cls: "empty-doc", text: "No results." })); }
  window.llmReview = { data: DATA, exportList: exportList, step: step, showEvidence: function (path) { return state.letter ? showEvidence(state.letter, path, null) : null; } };
})();

// The live view of a kiln fleet. Every value from the snapshot reaches the
// page as text (textContent, setAttribute), never as markup: an instance
// name or a health reason cannot inject HTML.
"use strict";

(() => {
  const pollMillis = 2000; // polling, when the live stream is not available
  const pollsBeforeRetry = 15; // then the live stream is tried again

  const $ = (id) => document.getElementById(id);

  // el makes an element with attributes and children (strings become text).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function shortDigest(d) {
    if (!d) return "";
    const i = d.indexOf(":");
    return i >= 0 && d.length > i + 13 ? d.slice(0, i + 13) : d;
  }

  function clock(iso) {
    const t = new Date(iso);
    if (isNaN(t) || t.getFullYear() < 2) return "";
    return t.toLocaleTimeString([], { hour12: false });
  }

  function timeEl(iso) {
    return el("time", { datetime: iso, title: iso }, clock(iso));
  }

  // badge is a word in a coloured box; the class picks the colour, the
  // word carries the meaning.
  function badge(word, kind) {
    return el("span", { class: "badge " + kind + "-" + String(word).replace(/[^a-z-]/g, "") }, word);
  }

  function reach(inst) {
    const parts = (inst.forwards || []).map((f) =>
      f.hostPort ? "127.0.0.1:" + f.hostPort + " → " + f.guestPort : "guest " + f.guestPort);
    if (inst.address) parts.push(inst.address);
    return parts.join(", ");
  }

  function protection(inst) {
    const p = [];
    if (inst.protectFromScaleSetActions) p.push("from set actions");
    else if (inst.protectFromScaleIn) p.push("from scale-in");
    return p.join(", ");
  }

  function counts(set) {
    const n = {};
    for (const i of set.instances) {
      const w = i.state === "running" && i.health ? i.health : i.state;
      n[w] = (n[w] || 0) + 1;
    }
    return Object.entries(n).map(([w, c]) => c + " " + w).join(", ");
  }

  function upgradeView(set) {
    const u = set.upgrade;
    if (!u) return null;
    const box = el("div", { class: "upgrade upgrade-" + u.status.replace(/[^a-z-]/g, "") });
    box.append(
      el("h4", {}, "Upgrade ", badge(u.status, "upgrade")),
      el("p", {}, el("code", { title: u.from }, shortDigest(u.from)), " → ", el("code", { title: u.to }, shortDigest(u.to))),
    );
    if (u.batches > 0) {
      box.append(el("p", {}, el("label", {}, "Batch " + u.batch + " of " + u.batches + " ",
        el("progress", { max: u.batches, value: u.batch }))));
    }
    if (u.reason) box.append(el("p", { class: "reason" }, u.reason));
    return box;
  }

  function setView(set) {
    const id = "set-" + set.name.replace(/[^A-Za-z0-9_-]/g, "_");
    const facts = el("dl", { class: "facts" });
    const fact = (term, ...value) => facts.append(el("div", {}, el("dt", {}, term), el("dd", {}, ...value)));
    fact("Capacity", String(set.capacity));
    fact("Image", set.image.ref, set.image.digest ? [" ", el("code", { title: set.image.digest }, shortDigest(set.image.digest))] : null);
    fact("Domains", set.faultDomains + " fault, " + set.updateDomains + " update");
    // One host for the whole set is a fact of the set, not a column.
    const hosts = [...new Set(set.instances.map((i) => i.host))];
    const hostColumn = hosts.length > 1;
    if (hosts.length === 1) fact("Host", hosts[0] || "—");
    if (set.loadBalancer) {
      const where = set.loadBalancer.instance ? " in VM " + set.loadBalancer.instance : "";
      fact("Load balancer", el("code", {}, set.loadBalancer.listen), where);
    }
    if (set.autoscale) fact("Autoscale", set.autoscale);

    const columns = ["Instance", "State", "Health", "FD", "UD", "Image", "Reach", hostColumn && "Host", "Load balancer", "Protected"];
    const head = el("tr", {}, columns.filter(Boolean)
      .map((h) => el("th", { scope: "col", title: { FD: "fault domain", UD: "update domain" }[h] }, h)));
    const body = el("tbody");
    for (const inst of set.instances) {
      const outdated = inst.digest && set.image.digest && inst.digest !== set.image.digest;
      body.append(el("tr", { "data-instance": inst.name },
        el("th", { scope: "row" }, inst.name),
        el("td", { class: "state" }, badge(inst.state, "state")),
        el("td", { class: "health" }, inst.health ? badge(inst.health, "health") : "—",
          inst.healthReason ? el("div", { class: "reason" }, inst.healthReason) : null),
        el("td", { class: "num" }, String(inst.faultDomain)),
        el("td", { class: "num" }, String(inst.updateDomain)),
        el("td", {}, inst.digest ? el("code", { title: inst.digest }, shortDigest(inst.digest)) : "—",
          outdated ? [" ", badge("outdated", "mark")] : null),
        el("td", { class: "reach" }, reach(inst) || "—"),
        hostColumn ? el("td", { class: "host" }, inst.host || "—") : null,
        el("td", {}, inst.loadBalancer ? badge(inst.loadBalancer, "lb") : "—"),
        el("td", { class: "protected" }, protection(inst) || "—"),
      ));
    }
    const table = el("table", {},
      el("caption", {}, set.instances.length + " instance" + (set.instances.length === 1 ? "" : "s") +
        (set.instances.length ? ": " + counts(set) : "")),
      el("thead", {}, head), body);
    return el("section", { class: "set", id: id, "aria-labelledby": id + "-title" },
      el("h2", { id: id + "-title" }, el("span", { class: "kind" }, set.kind), " ", set.name),
      facts, upgradeView(set), el("div", { class: "scroll" }, table));
  }

  function eventView(e) {
    return el("li", { class: "event" },
      timeEl(e.at), " ",
      badge(e.kind, "event"), " ",
      e.instance || e.set ? el("span", { class: "where" }, e.instance || e.set) : null, " ",
      el("span", { class: "message" }, e.message));
  }

  let shown = ""; // the last snapshot shown, as JSON without its time
  let drawn = 0; // bumped at every change, so the drawing is fetched again

  function show(snap) {
    $("problem").hidden = true;
    const key = JSON.stringify({ ...snap, at: null });
    if (key === shown) return;
    shown = key;
    const at = $("changed-time");
    at.dateTime = snap.at;
    at.title = snap.at;
    at.textContent = clock(snap.at);
    $("changed").hidden = false;
    $("fleet").textContent = snap.fleet;
    document.title = "kiln: " + snap.fleet;
    $("sets").replaceChildren(...snap.sets.map(setView));
    $("event-log").replaceChildren(...snap.events.slice().reverse().map(eventView));
    $("no-events").hidden = snap.events.length > 0;
    drawn++;
    const img = $("drawing");
    img.hidden = false;
    img.src = "api/graph.svg?v=" + drawn;
  }

  // The status line says how the page gets its data; it is a live region,
  // so it changes only when that does.
  let mode = "";
  function status(m, detail) {
    const text = {
      live: "Live: updated as the fleet changes.",
      polling: "Polling every " + pollMillis / 1000 + " s: no live stream.",
      lost: "Connection lost, retrying" + (detail ? ": " + detail : "."),
      connecting: "Connecting…",
    }[m];
    if (m === mode && $("status").textContent === text) return;
    mode = m;
    $("status").className = "mode-" + m;
    $("status").textContent = text;
  }

  function problem(msg) {
    const p = $("problem");
    p.textContent = msg;
    p.hidden = false;
  }

  // The drawing, when Graphviz could not draw: say why in its place.
  $("drawing").addEventListener("error", async () => {
    const img = $("drawing");
    img.hidden = true;
    let why = "The drawing is not available.";
    try {
      const r = await fetch(img.src, { cache: "no-store" });
      if (!r.ok) why = (await r.text()).trim() || why;
    } catch (e) { /* keep the plain message */ }
    $("drawing-note").textContent = why;
  });
  $("drawing").addEventListener("load", () => {
    $("drawing-note").textContent = "Hosts, sets, fault domains and instances, coloured by state and health.";
  });

  // live follows /api/events; when the stream cannot be had or breaks, the
  // page polls instead and tries the stream again now and then.
  function live() {
    if (!window.EventSource) { poll(Infinity); return; }
    const es = new EventSource("api/events");
    es.addEventListener("snapshot", (ev) => {
      show(JSON.parse(ev.data));
      status("live");
    });
    es.addEventListener("source-error", (ev) => problem(JSON.parse(ev.data).error));
    es.addEventListener("error", () => {
      es.close();
      poll(pollsBeforeRetry);
    });
  }

  function poll(times) {
    let n = 0;
    const tick = async () => {
      try {
        const r = await fetch("api/snapshot", { cache: "no-store" });
        const body = await r.json();
        status("polling");
        if (r.ok) show(body);
        else problem(body.error || r.statusText);
      } catch (e) {
        status("lost", String(e.message || e));
      }
      if (++n >= times) { live(); return; }
      setTimeout(tick, pollMillis);
    };
    tick();
  }

  status("connecting");
  live();
})();

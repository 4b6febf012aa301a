"use strict";
// Renders the server's own OpenAPI document; nothing is fetched from anywhere else.
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
};
const tokenInput = document.getElementById("token");
tokenInput.value = localStorage.getItem("botarmy-token") || "";
tokenInput.addEventListener("change", () => localStorage.setItem("botarmy-token", tokenInput.value));

function resolve(doc, schema) {
  if (schema && schema.$ref) return doc.components.schemas[schema.$ref.split("/").pop()] || {};
  return schema || {};
}

// A short, readable shape of a schema (one level of properties, references named).
function describe(doc, schema, depth = 0) {
  if (!schema) return "";
  if (schema.$ref) {
    const name = schema.$ref.split("/").pop();
    return depth > 1 ? name : name + " " + describe(doc, resolve(doc, schema), depth + 1);
  }
  if (schema.oneOf || schema.anyOf) return (schema.oneOf || schema.anyOf).map(s => describe(doc, s, depth)).join(" | ");
  if (schema.type === "array") return "[" + describe(doc, schema.items, depth) + "]";
  if (schema.properties) {
    const required = new Set(schema.required || []);
    const fields = Object.entries(schema.properties).map(([k, v]) =>
      "  ".repeat(depth + 1) + k + (required.has(k) ? "" : "?") + ": " + describe(doc, v, depth + 1));
    return "{\n" + fields.join(",\n") + "\n" + "  ".repeat(depth) + "}";
  }
  const type = Array.isArray(schema.type) ? schema.type.join(" | ") : (schema.type || "any");
  return schema.enum ? schema.enum.map(e => JSON.stringify(e)).join(" | ") : type;
}

function tryIt(path, method, op) {
  const params = (op.parameters || []);
  const inputs = {};
  const form = el("div");
  for (const p of params) {
    inputs[p.name] = el("input", { placeholder: p.name + " (" + p.in + ")" });
    form.append(el("div", {}, inputs[p.name]));
  }
  let body = null;
  if (op.requestBody) {
    body = el("textarea", { placeholder: "JSON body" });
    form.append(body);
  }
  const out = el("pre");
  const send = el("button", {}, "Send");
  send.addEventListener("click", async () => {
    let url = path;
    const query = new URLSearchParams();
    for (const p of params) {
      const v = inputs[p.name].value;
      if (!v) continue;
      if (p.in === "path") url = url.replace("{" + p.name + "}", encodeURIComponent(v));
      else if (p.in === "query") query.set(p.name, v);
    }
    if ([...query].length) url += "?" + query;
    const headers = {};
    if (tokenInput.value) headers.Authorization = "Bearer " + tokenInput.value;
    // Every POST declares JSON, with a body or without one (the server refuses it otherwise).
    if (method.toLowerCase() === "post" || (body && body.value.trim())) headers["Content-Type"] = "application/json";
    try {
      const res = await fetch(url, { method: method.toUpperCase(), headers, body: body && body.value.trim() ? body.value : undefined });
      const text = await res.text();
      let shown = text;
      try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* not JSON */ }
      out.textContent = res.status + " " + res.statusText + "\n\n" + shown;
    } catch (e) {
      out.textContent = String(e);
    }
  });
  form.append(send, out);
  return form;
}

function operation(doc, path, method, op) {
  const body = el("div", { class: "body" });
  if (op.description) body.append(el("p", {}, op.description));
  if ((op.parameters || []).length) {
    const table = el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"), el("th", {}, "description")));
    for (const p of op.parameters) {
      table.append(el("tr", {}, el("td", {}, el("code", {}, p.name + (p.required ? "" : "?"))), el("td", {}, p.in), el("td", {}, p.description || "")));
    }
    body.append(table);
  }
  if (op.requestBody) {
    const schema = Object.values(op.requestBody.content || {})[0];
    body.append(el("h4", {}, "Request body"), el("pre", {}, describe(doc, schema && schema.schema)));
  }
  const responses = el("table", {}, el("tr", {}, el("th", {}, "status"), el("th", {}, "response")));
  for (const [status, r] of Object.entries(op.responses || {})) {
    const content = Object.values(r.content || {})[0];
    responses.append(el("tr", {}, el("td", {}, status),
      el("td", {}, r.description || "", content && content.schema ? el("pre", {}, describe(doc, content.schema)) : "")));
  }
  body.append(el("h4", {}, "Responses"), responses, el("h4", {}, "Try it"), tryIt(path, method, op));
  return el("details", { class: "op" },
    el("summary", {}, el("span", { class: "method " + method }, method), el("span", { class: "path" }, path),
      el("span", { class: "summary" }, op.summary || "")),
    body);
}

async function main() {
  const content = document.getElementById("content");
  let doc;
  try {
    const res = await fetch("/api/openapi.json");
    doc = await res.json();
  } catch (e) {
    content.replaceChildren(el("p", { class: "error" }, "Could not read /api/openapi.json: " + e));
    return;
  }
  document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
  const tags = (doc.tags || []).map(t => ({ ...t, ops: [] }));
  const byName = Object.fromEntries(tags.map(t => [t.name, t]));
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || "other";
      if (!byName[tag]) { byName[tag] = { name: tag, ops: [] }; tags.push(byName[tag]); }
      byName[tag].ops.push([path, method, op]);
    }
  }
  const nav = document.getElementById("nav");
  content.replaceChildren(el("p", {}, doc.info.description || ""));
  for (const t of tags.filter(t => t.ops.length)) {
    nav.append(el("a", { href: "#tag-" + t.name }, t.name));
    const section = el("section", { class: "tag", id: "tag-" + t.name }, el("h2", {}, t.name), el("p", {}, t.description || ""));
    for (const [path, method, op] of t.ops) section.append(operation(doc, path, method, op));
    content.append(section);
  }
}
main();

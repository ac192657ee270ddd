// The page at /ui: sends images to the service's own API and shows its answers. No libraries and
// nothing from elsewhere: it must work offline and under a strict Content-Security-Policy.
"use strict";

const $ = (id) => document.getElementById(id);
const api = (path) => new URL(`../${path}`, document.baseURI); // works behind a path prefix
const KEY = "image-classifier-api-key";
const WEIGHTS = {
  imagenet: "ImageNet weights (torchvision)",
  file: "ImageNet weights (from a checkpoint file)",
  finetune: "fine-tuned weights",
  demo: "demo model",
};

let limits = { max_batch_images: 32, max_request_bytes: 32 * 1024 * 1024, max_top_k: 100 };
let apiKey = sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || "";
const shownFiles = new WeakMap(); // card: its file, sent again to /explain when asked

function headers() {
  return apiKey ? { Authorization: `Bearer ${apiKey}` } : {};
}

// The API's own message when it sent one, else a plain sentence for the status.
async function problem(response) {
  let message = "";
  try {
    message = (await response.json()).error || "";
  } catch {
    // not JSON: a proxy's page, say
  }
  if (response.status === 401) {
    openKeyBox();
    return apiKey
      ? "the API key was not accepted: check it under “API key”."
      : "this service needs an API key: enter it under “API key”.";
  }
  if (response.status === 503 || response.status === 429) {
    const wait = response.headers.get("Retry-After");
    const later = wait ? ` Try again in ${wait} s.` : " Try again shortly.";
    const busy = message.replace(/([^.!?])$/, "$1.") || "the service is busy."; // a sentence
    return busy + later;
  }
  return message || `the service answered ${response.status} ${response.statusText}.`;
}

function openKeyBox() {
  $("key-box").open = true;
  $("api-key").focus();
}

async function loadInfo() {
  let response;
  try {
    response = await fetch(api("info"), { headers: headers() });
  } catch {
    $("model").textContent = "Cannot reach the service.";
    return;
  }
  if (!response.ok) {
    $("model").textContent = `Model unknown: ${await problem(response)}`;
    return;
  }
  const info = await response.json();
  limits = { ...limits, ...info.limits };
  const source = WEIGHTS[info.weights_source] || info.weights_source;
  $("model").textContent =
    `Model ${info.model} · ${source} · ${info.num_classes} classes · ${info.device}, ${info.precision}`;
  $("demo-notice").hidden = !info.is_demo;
  if (info.is_demo) $("demo-labels").textContent = info.labels.join(", ");
  for (const option of $("top-k").options) {
    option.disabled = Number(option.value) > Math.min(limits.max_top_k, info.num_classes);
  }
}

function newCard(file) {
  const card = $("card-template").content.firstElementChild.cloneNode(true);
  const preview = card.querySelector(".preview");
  preview.src = URL.createObjectURL(file);
  preview.alt = `Preview of ${file.name}`;
  preview.addEventListener("load", () => URL.revokeObjectURL(preview.src), { once: true });
  preview.addEventListener("error", () => {
    URL.revokeObjectURL(preview.src);
    preview.classList.add("broken");
  }, { once: true });
  card.querySelector(".name").textContent = file.name;
  card.querySelector(".meta").textContent = "Classifying…";
  card.setAttribute("aria-busy", "true");
  shownFiles.set(card, file);
  return card;
}

function showPredictions(card, predictions, meta) {
  card.removeAttribute("aria-busy");
  card.querySelector(".meta").textContent = meta;
  const name = card.querySelector(".name").textContent;
  const bars = card.querySelector(".bars");
  bars.setAttribute("aria-label", `Top ${predictions.length} for ${name}`);
  for (const { label, score } of predictions) {
    const percent = (100 * score).toFixed(1);
    const row = document.createElement("li");
    const text = document.createElement("span");
    text.className = "label";
    text.textContent = label;
    const value = document.createElement("span");
    value.className = "percent";
    value.textContent = `${percent}%`;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.setAttribute("aria-hidden", "true");
    bar.style.setProperty("--share", `${percent}%`); // CSSOM: allowed by the page's CSP
    row.append(text, value, bar);
    bars.append(row);
  }
  if (predictions.length) offerExplanation(card, predictions[0].label);
}

function paragraph(className, text) {
  const line = document.createElement("p");
  line.className = className;
  line.textContent = text;
  return line;
}

// "Where did it look?" under a result: /explain is asked the first time it is opened (and again
// after a failure); closing it only hides the answer.
function offerExplanation(card, label) {
  const box = card.querySelector(".explain");
  box.hidden = false;
  box.addEventListener("toggle", () => {
    if (box.open && !box.dataset.asked) explain(box, shownFiles.get(card), label);
  });
}

async function explain(box, file, label) {
  box.dataset.asked = "true";
  const view = box.querySelector(".explanation");
  const fail = (message, meta) => {
    delete box.dataset.asked; // opening it again asks again: the service may be less busy then
    view.removeAttribute("aria-busy");
    view.replaceChildren(paragraph("error", `Not explained: ${message}`), paragraph("meta", meta));
  };
  view.setAttribute("aria-busy", "true");
  view.replaceChildren(paragraph("meta", `Finding where the model looked for “${label}”…`));
  const form = new FormData();
  form.append("image", file, file.name);
  form.append("label", label);
  const { response, took } = await post("explain", form);
  if (!response) return fail("cannot reach the service.", took);
  if (!response.ok) return fail(await problem(response), `answered in ${took}`);
  let shown;
  try {
    shown = heatmapFigure(await response.json());
  } catch {
    return fail("the answer could not be read.", ""); // not the API's: a proxy's page, say
  }
  view.removeAttribute("aria-busy");
  view.replaceChildren(shown, paragraph("meta", `answered in ${took}`));
}

// The heatmap over the image as the model saw it (resized and cropped), and what it shows.
function heatmapFigure({ explained, explanation }) {
  const { description } = explanation;
  const heatmap = document.createElement("img");
  heatmap.className = "heatmap";
  heatmap.src = `data:image/png;base64,${explanation.heatmap_png}`;
  heatmap.alt = `Where the model looked for “${explained.label}”: ${description}`;
  const caption = document.createElement("figcaption");
  caption.textContent = description.charAt(0).toUpperCase() + description.slice(1);
  const figure = document.createElement("figure");
  figure.append(heatmap, caption);
  return figure;
}

function showError(card, message, meta) {
  card.removeAttribute("aria-busy");
  card.classList.add("failed");
  card.querySelector(".meta").textContent = meta;
  const error = card.querySelector(".error");
  error.textContent = `Not classified: ${message}`;
  error.hidden = false;
}

const ms = (start) => `${Math.round(performance.now() - start)} ms`;

async function post(path, form) {
  form.append("top_k", $("top-k").value);
  const start = performance.now();
  try {
    const response = await fetch(api(path), { method: "POST", body: form, headers: headers() });
    return { response, took: ms(start) };
  } catch {
    return { response: null, took: ms(start) };
  }
}

async function classifyOne(file, card) {
  const form = new FormData();
  form.append("image", file, file.name);
  const { response, took } = await post("predict", form);
  if (!response) return showError(card, "cannot reach the service.", took);
  if (!response.ok) return showError(card, await problem(response), `answered in ${took}`);
  showPredictions(card, (await response.json()).predictions, `answered in ${took}`);
}

async function classifyBatch(files, cards) {
  const form = new FormData();
  files.forEach((file) => form.append("images", file, file.name));
  const { response, took } = await post("predict_batch", form);
  const meta = `answered in ${took}, ${files.length} images in one request`;
  if (!response) return cards.forEach((card) => showError(card, "cannot reach the service.", took));
  if (!response.ok) {
    const message = await problem(response);
    return cards.forEach((card) => showError(card, message, meta));
  }
  const { results } = await response.json();
  results.forEach((result, i) => {
    if (result.error) showError(cards[i], result.error, meta);
    else showPredictions(cards[i], result.predictions, meta);
  });
}

// Requests the service accepts: at most max_batch_images files and max_request_bytes each (a file
// too large on its own goes alone, and the API says why it is refused).
function requests(files) {
  const groups = [];
  let group = [];
  let bytes = 0;
  const room = limits.max_request_bytes - 64 * 1024; // the multipart framing
  for (const file of files) {
    if (group.length && (group.length >= limits.max_batch_images || bytes + file.size > room)) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
    group.push(file);
    bytes += file.size;
  }
  if (group.length) groups.push(group);
  return groups;
}

async function classify(fileList) {
  const files = [...fileList];
  if (!files.length) return;
  const cards = new Map(files.map((file) => [file, newCard(file)]));
  $("results").prepend(...cards.values()); // newest first, in the order they were given
  const noun = files.length === 1 ? "image" : "images";
  $("status").textContent = `Classifying ${files.length} ${noun}…`;
  const calls = requests(files).map((group) => () => {
    const mine = group.map((file) => cards.get(file));
    const call = group.length === 1 ? classifyOne(group[0], mine[0]) : classifyBatch(group, mine);
    // an answer that is not the API's (a proxy's page with status 200, say)
    return call.catch(() => {
      const unread = mine.filter((card) => card.hasAttribute("aria-busy"));
      unread.forEach((card) => showError(card, "the answer could not be read.", ""));
    });
  });
  // two requests at a time: a folder of photos must not flood the service
  const next = async () => {
    while (calls.length) await calls.shift()();
  };
  await Promise.all([next(), next()]);
  const failed = [...cards.values()].filter((card) => card.classList.contains("failed")).length;
  $("status").textContent =
    `Classified ${files.length - failed} of ${files.length} ${noun}` +
    (failed ? `; ${failed} could not be classified.` : ".");
}

function useKey(event) {
  event.preventDefault();
  apiKey = $("api-key").value.trim();
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
  if (apiKey) ($("remember-key").checked ? localStorage : sessionStorage).setItem(KEY, apiKey);
  $("status").textContent = apiKey ? "API key set." : "API key cleared.";
  loadInfo();
}

function setUp() {
  $("choose").addEventListener("click", () => $("files").click());
  $("photo").addEventListener("click", () => $("camera").click());
  for (const input of [$("files"), $("camera")]) {
    input.addEventListener("change", () => {
      classify(input.files);
      input.value = ""; // choosing the same file again classifies it again
    });
  }

  const zone = $("drop-zone");
  // a file dropped beside the zone must not make the browser leave the page to show it
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (e) => e.preventDefault());
  zone.addEventListener("dragover", () => zone.classList.add("dragging"));
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    zone.classList.remove("dragging");
    classify(event.dataTransfer.files);
  });
  document.addEventListener("paste", (event) => {
    const files = [...event.clipboardData.files];
    if (files.length && event.target !== $("api-key")) {
      event.preventDefault();
      classify(files);
    }
  });

  $("api-key").value = apiKey;
  $("remember-key").checked = Boolean(localStorage.getItem(KEY));
  $("key-form").addEventListener("submit", useKey);
  loadInfo();
}

setUp();

// The page of `fashion-retrieval serve` (docs/serving.md): a photo or a dataset bundle -> POST /search ->
// the photo with its searched boxes, the ranked products and the timings; a text alone, or composed with
// the last photo or a chosen product tile. Plain DOM, no libraries.
"use strict";

const $ = (id) => document.getElementById(id);
let lastQuery = null; // {file: File} or {bundleId: string}
let photoUrl = null;
let textBase = null; // what a text is composed with: {file: File} or {productId: string}; null: the text alone

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function options() {
  const chosen = {
    k: $("k").value || "15",
    detector: $("detector").value,
    rerank: $("rerank").checked ? "true" : "false",
  };
  if ($("section").value !== "") chosen.section = $("section").value;
  return chosen;
}

async function answer(response) {
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

async function search() {
  if (!lastQuery) {
    setStatus("Choose or drop a photo, or pick a random bundle first.", true);
    return;
  }
  setStatus("Searching…");
  $("search").disabled = true;
  try {
    let response;
    if (lastQuery.file) {
      const form = new FormData();
      form.append("image", lastQuery.file);
      for (const [key, value] of Object.entries(options())) form.append(key, value);
      response = await fetch("/search", { method: "POST", body: form });
    } else {
      const body = { bundle_id: lastQuery.bundleId, ...options() };
      delete body.section; // a bundle has its own section
      body.k = Number(body.k);
      body.rerank = body.rerank === "true";
      response = await fetch("/search", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
    }
    show(await answer(response));
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    $("search").disabled = false;
  }
}

function setTextBase(base) {
  textBase = base;
  for (const item of document.querySelectorAll("#products .tile")) {
    const chosen = Boolean(base && base.productId === item.dataset.productId);
    item.classList.toggle("chosen", chosen);
    item.setAttribute("aria-pressed", String(chosen));
  }
  $("text-alone").hidden = !base;
  $("text-base").textContent = !base
    ? "The text alone searches the catalogue; choose a product (click or Enter on its tile) to compose with it."
    : base.file
      ? "The text is composed with your photo: \"this product, <text>\"."
      : `The text is composed with product ${base.productId}: "this product, <text>".`;
}

async function searchText() {
  const text = $("text").value;
  if (!text.trim()) {
    setStatus("Type a text first, such as: red striped shirt.", true);
    return;
  }
  setStatus("Searching…");
  $("search-text").disabled = true;
  try {
    const chosen = options();
    const form = new FormData();
    form.append("text", text);
    form.append("k", chosen.k);
    if (chosen.section !== undefined) form.append("section", chosen.section);
    if (textBase && textBase.file) form.append("image", textBase.file);
    if (textBase && textBase.productId) form.append("product_id", textBase.productId);
    show(await answer(await fetch("/search", { method: "POST", body: form })));
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    $("search-text").disabled = false;
  }
}

function drawBoxes(crops) {
  const photo = $("query-photo");
  const layer = $("boxes");
  layer.replaceChildren();
  const width = photo.naturalWidth;
  const height = photo.naturalHeight;
  for (const crop of crops) {
    if (!crop.box || !width) continue;
    const [x1, y1, x2, y2] = crop.box;
    const box = document.createElement("div");
    box.className = "box";
    box.style.left = `${(100 * x1) / width}%`;
    box.style.top = `${(100 * y1) / height}%`;
    box.style.width = `${(100 * (x2 - x1)) / width}%`;
    box.style.height = `${(100 * (y2 - y1)) / height}%`;
    const label = document.createElement("span");
    label.textContent = crop.label;
    box.append(label);
    layer.append(box);
  }
}

function tile(product, rank) {
  const item = document.createElement("li");
  item.className = "tile" + (product.hit ? " hit" : "");
  item.tabIndex = 0;
  item.dataset.productId = product.product_asset_id;
  item.setAttribute("role", "button");
  item.setAttribute("aria-pressed", "false");
  item.title = "choose this product for a composed text query";
  const image = document.createElement("img");
  image.src = product.image_url;
  image.alt = `${product.category} ${product.product_asset_id}`;
  image.loading = "lazy";
  const score = product.score === null ? "filled slot" : `score ${product.score.toFixed(3)}`;
  const text = document.createElement("div");
  text.innerHTML = `<span class="rank"></span> <span class="category"></span><br><span class="score"></span>`;
  text.querySelector(".rank").textContent = `#${rank}`;
  text.querySelector(".category").textContent = product.category;
  text.querySelector(".score").textContent = score;
  if (product.hit) {
    const mark = document.createElement("div");
    mark.className = "hit-mark";
    mark.textContent = "✓ in the bundle's truth";
    text.append(mark);
  }
  if (product.crop) text.title = `found by the ${product.crop.label} crop`;
  const choose = () => setTextBase({ productId: product.product_asset_id });
  item.addEventListener("click", choose);
  item.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      choose();
      $("text").focus();
    }
  });
  item.append(image, text);
  return item;
}

function show(result) {
  $("result").hidden = false;
  const photo = $("query-photo");
  photo.onload = () => drawBoxes(result.crops);
  const source = result.image_url || (result.query === "text" ? null : photoUrl);
  $("photo-box").hidden = !source;
  if (source) photo.src = source;
  if (source && photo.complete && photo.naturalWidth) drawBoxes(result.crops);
  const stages = Object.entries(result.timings_ms).map(([stage, ms]) => `${stage} ${ms.toFixed(1)} ms`);
  $("timings").textContent = `Server time: ${stages.join(" · ")}`;
  const hits = result.products.filter((p) => p.hit).length;
  $("truth").textContent = result.truth
    ? `${hits} of the bundle's ${result.truth.length} products found`
    : "no ground truth for this query";
  $("products").replaceChildren(...result.products.map((p, i) => tile(p, i + 1)));
  setTextBase(textBase);
  if (result.text !== null && result.text !== undefined) {
    const photo = result.query === "composed" ? "your photo + " : "";
    const base = result.product_id ? `product ${result.product_id} + ` : photo;
    const fusion = result.fusion ? ` (${result.fusion})` : "";
    setStatus(`${result.products.length} products for ${base}"${result.text}"${fusion}.`);
    return;
  }
  const what = result.bundle_id ? `bundle ${result.bundle_id} (section ${result.section})` : "your photo";
  setStatus(`${result.products.length} products for ${what}, detector ${result.detector}.`);
}

function useFile(file) {
  if (!file) return;
  if (photoUrl) URL.revokeObjectURL(photoUrl);
  photoUrl = URL.createObjectURL(file);
  lastQuery = { file };
  setTextBase({ file });
  search();
}

async function randomBundle(split) {
  try {
    const found = await answer(await fetch(`/bundles/random?split=${split}`));
    lastQuery = { bundleId: found.bundle_id };
    setTextBase(null);
    search();
  } catch (error) {
    setStatus(error.message, true);
  }
}

async function loadInfo() {
  try {
    const info = await answer(await fetch("/info"));
    const metric = info.metrics["val/recall@15"];
    $("run-info").textContent =
      `${info.model.backbone} (${info.model.backend}), ${info.index.type} index of ` +
      `${info.index.size} products` + (metric === undefined ? "" : `, validation Recall@15 ${metric.toFixed(3)}`);
    for (const section of info.dataset.sections) $("section").add(new Option(String(section), section));
    for (const name of info.detectors) {
      $("detector").add(new Option(name, name, false, name === info.default_detector));
    }
    $("k").max = info.limits.max_k;
    $("rerank").disabled = info.reranker.length === 0;
    $("text-fields").disabled = !info.text.available;
    if (!info.text.available) $("text-base").textContent = `Text queries: ${info.text.how}`;
    else $("text").maxLength = info.limits.max_text_chars;
  } catch (error) {
    setStatus(`cannot read /info: ${error.message}`, true);
  }
}

$("photo").addEventListener("change", (event) => useFile(event.target.files[0]));
$("drop").addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    $("photo").click();
  }
});
$("drop").addEventListener("dragover", (event) => {
  event.preventDefault();
  $("drop").classList.add("over");
});
$("drop").addEventListener("dragleave", () => $("drop").classList.remove("over"));
$("drop").addEventListener("drop", (event) => {
  event.preventDefault();
  $("drop").classList.remove("over");
  useFile(event.dataTransfer.files[0]);
});
$("random-val").addEventListener("click", () => randomBundle("val"));
$("random-test").addEventListener("click", () => randomBundle("test"));
$("query").addEventListener("submit", (event) => {
  event.preventDefault();
  search();
});
$("text-query").addEventListener("submit", (event) => {
  event.preventDefault();
  searchText();
});
$("text-alone").addEventListener("click", () => {
  setTextBase(null);
  searchText();
});
loadInfo();

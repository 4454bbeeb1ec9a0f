// videofleet upload page: presigned PUT straight to the bucket, multipart in parallel parts above
// the threshold, then conditional status polling until the thumbnails and the storyboard appear.
// /upload?video=<id> shows a video already uploaded. No build step, no dependencies.
"use strict";

const MAX_BYTES = 5_000_000_000; // the design's 5 GB
const MULTIPART_THRESHOLD = 50 * 1024 * 1024; // the server may set a lower one (413 use_multipart)
const PART_CONCURRENCY = 4;
const PART_ATTEMPTS = 4; // one try and three retries per part
const POLL_MS = 1500; // first interval, and again after every change
const POLL_MAX_MS = 10_000; // backing off by POLL_BACKOFF while the status stays the same
const POLL_BACKOFF = 1.5;
const STATUS_KEY = "videofleet.status."; // + video id: the last answer and its ETag
// Extension (".mp4") -> MIME type, written into the page by the server from its one table.
const TYPES = JSON.parse(document.getElementById("video-types").textContent);

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || { code: "http_" + response.status, message: response.statusText };
    throw new ApiError(response.status, error.code, error.message);
  }
  return data;
}

function contentTypeOf(file) {
  const match = /\.([A-Za-z0-9]+)$/.exec(file.name);
  return match ? TYPES["." + match[1].toLowerCase()] : undefined;
}

function formatBytes(n) {
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function setStatus(state, text) {
  const status = $("status");
  status.dataset.state = state;
  status.textContent = text;
}

function showError(message) {
  const error = $("error");
  error.hidden = false;
  error.textContent = message;
  setStatus("failed", "Upload failed");
}

function setProgress(loaded, total) {
  const percent = total ? Math.min(100, Math.floor((loaded / total) * 100)) : 0;
  $("progress").value = percent;
  $("percent").textContent = `${percent}% (${formatBytes(loaded)} of ${formatBytes(total)})`;
}

// PUT a blob to a presigned URL with upload progress; resolves with the response's ETag.
function put(url, blob, contentType, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    if (contentType) xhr.setRequestHeader("Content-Type", contentType);
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(blob.size);
        resolve(xhr.getResponseHeader("ETag"));
      } else {
        reject(new Error(`storage answered ${xhr.status}`));
      }
    };
    xhr.onerror = () => reject(new Error("network error while uploading"));
    xhr.onabort = () => reject(new Error("upload aborted"));
    xhr.send(blob);
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function uploadSingle(file, target) {
  await put(target.uploadUrl, file, target.contentType, (loaded) => setProgress(loaded, file.size));
  return target.videoId;
}

// Open multipart uploads by file (name, size, mtime), so that choosing the same file again
// after a reload or a closed tab resumes instead of sending every part again.
const RESUME_KEY = "videofleet.multipart";
const fileId = (file) => `${file.name}|${file.size}|${file.lastModified}`;

function openUploads() {
  try { return JSON.parse(localStorage.getItem(RESUME_KEY)) || {}; } catch { return {}; }
}

function rememberUpload(file, uploadId) {
  const open = openUploads();
  if (uploadId) open[fileId(file)] = uploadId; else delete open[fileId(file)];
  try { localStorage.setItem(RESUME_KEY, JSON.stringify(open)); } catch { /* storage full or off */ }
}

// The upload this browser left open for the same file, with its stored parts; null to start anew.
async function openUploadOf(file) {
  const uploadId = openUploads()[fileId(file)];
  if (!uploadId) return null;
  try {
    const stored = await api("GET", `/api/multipart/${encodeURIComponent(uploadId)}/parts`);
    return { uploadId, ...stored };
  } catch {
    rememberUpload(file, null); // completed, aborted, expired or unreachable: start anew
    return null;
  }
}

async function uploadMultipart(file, contentType) {
  const resumed = await openUploadOf(file);
  const upload = resumed || await api("POST", "/api/multipart",
    { filename: file.name, contentType, size: file.size });
  rememberUpload(file, upload.uploadId);
  const base = `/api/multipart/${encodeURIComponent(upload.uploadId)}`;
  const loaded = new Array(upload.partCount + 1).fill(0);
  const report = () => setProgress(loaded.reduce((a, b) => a + b, 0), file.size);
  const etags = new Array(upload.partCount + 1);
  const sizeOf = (n) => Math.min(upload.partSize, file.size - (n - 1) * upload.partSize);
  for (const part of (resumed ? resumed.parts : [])) {
    if (part.size === sizeOf(part.partNumber)) { // a part cut short is sent again
      etags[part.partNumber] = part.etag;
      loaded[part.partNumber] = part.size;
    }
  }
  const queue = Array.from({ length: upload.partCount }, (_, i) => i + 1).filter((n) => !etags[n]);
  if (resumed) {
    setStatus("uploading", `Resuming: ${upload.partCount - queue.length} of ${upload.partCount} parts already stored`);
    report();
  }

  async function partUrl(number) {
    const answer = await api("POST", `${base}/part-urls`, { partNumbers: [number] });
    return answer.parts[0].url;
  }

  async function sendPart(number) {
    const start = (number - 1) * upload.partSize;
    const blob = file.slice(start, Math.min(start + upload.partSize, file.size));
    for (let attempt = 1; ; attempt += 1) {
      try {
        const url = await partUrl(number); // a fresh URL per attempt: an expired one is renewed
        etags[number] = await put(url, blob, null, (n) => { loaded[number] = n; report(); });
        return;
      } catch (error) {
        loaded[number] = 0;
        report();
        if (attempt >= PART_ATTEMPTS || error instanceof ApiError) throw error;
        await sleep(500 * 2 ** (attempt - 1));
      }
    }
  }

  async function worker() {
    while (queue.length) await sendPart(queue.shift());
  }

  try {
    await Promise.all(Array.from({ length: Math.min(PART_CONCURRENCY, upload.partCount) }, worker));
    if (etags.slice(1).some((etag) => !etag)) {
      throw new Error("the storage did not expose ETag headers (check the bucket's CORS rules)");
    }
    const parts = etags.slice(1).map((etag, i) => ({ partNumber: i + 1, etag }));
    await api("POST", `${base}/complete`, { parts });
  } catch (error) {
    await api("DELETE", base).catch(() => undefined);
    throw error;
  } finally {
    rememberUpload(file, null);
  }
  return upload.videoId;
}

function showVideo(video) {
  $("result").hidden = false;
  const probe = (video.metadata && video.metadata.probe) || {};
  const facts = [
    ["status", video.status],
    ["key", video.key],
    ["size", formatBytes(video.sizeBytes || 0)],
  ];
  if (probe.duration_s) facts.push(["duration", `${probe.duration_s.toFixed(2)} s`]);
  if (probe.display_width) facts.push(["display", `${probe.display_width}×${probe.display_height}`]);
  if (probe.video_codec) facts.push(["codec", probe.video_codec]);
  $("facts").replaceChildren(...facts.flatMap(([k, v]) => {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    return [dt, dd];
  }));
  // Links are stable (same URL all window long, or public), so an image is replaced only when
  // its URL changes: the browser's cache answers for the rest.
  const shown = [...$("thumbnails").children].map((img) => img.dataset.url).join(" ");
  if (shown !== video.thumbnails.map((thumb) => thumb.url).join(" ")) {
    $("thumbnails").replaceChildren(...video.thumbnails.map((thumb, i) => {
      const img = document.createElement("img");
      img.src = thumb.url;
      img.dataset.url = thumb.url;
      img.alt = `thumbnail ${i + 1}` + (thumb.atS != null ? ` at ${thumb.atS.toFixed(1)} s` : "");
      img.className = "thumbnail";
      return img;
    }));
  }
}

// WebVTT cues of a storyboard: "start --> end" then "<sprite>#xywh=x,y,w,h".
function parseStoryboardVtt(text) {
  const seconds = (t) => t.split(":").reduce((total, part) => total * 60 + parseFloat(part), 0);
  const cues = [];
  for (const block of text.replace(/\r/g, "").split(/\n\n+/)) {
    const match = /([\d:.]+)\s+-->\s+([\d:.]+)[^\n]*\n[^#\n]*#xywh=(\d+),(\d+),(\d+),(\d+)/.exec(block);
    if (match) {
      const [x, y, w, h] = match.slice(3).map(Number);
      cues.push({ start: seconds(match[1]), end: seconds(match[2]), x, y, w, h });
    }
  }
  return cues;
}

function formatTime(s) {
  const m = Math.floor(s / 60);
  return `${m}:${(s - m * 60).toFixed(1).padStart(4, "0")}`;
}

// The storyboard: hovering the bar shows the sprite's tile for that time, as players do.
async function showStoryboard(board) {
  const section = $("storyboard");
  if (!board || section.dataset.vtt === board.vttUrl) return;
  const response = await fetch(board.vttUrl); // immutable: later views come from the cache
  if (!response.ok) throw new Error(`storyboard map: storage answered ${response.status}`);
  const cues = parseStoryboardVtt(await response.text());
  if (!cues.length) return;
  section.dataset.vtt = board.vttUrl;
  const end = cues[cues.length - 1].end;
  const tile = $("tile");
  tile.style.backgroundImage = `url("${board.spriteUrl}")`;
  const show = (t) => {
    const cue = cues.find((c) => c.start <= t && t < c.end) || cues[cues.length - 1];
    tile.style.width = `${cue.w}px`;
    tile.style.height = `${cue.h}px`;
    tile.style.backgroundPosition = `-${cue.x}px -${cue.y}px`;
    tile.dataset.xywh = `${cue.x},${cue.y},${cue.w},${cue.h}`;
    $("tile-time").textContent = formatTime(t);
  };
  $("scrub").onmousemove = (event) => {
    const rect = event.currentTarget.getBoundingClientRect();
    const t = Math.max(0, Math.min(1, (event.clientX - rect.left) / rect.width)) * end;
    $("scrub-head").style.left = `${(t / end) * 100}%`;
    show(t);
  };
  show(0);
  section.hidden = false;
}

function storedStatus(videoId) {
  try { return JSON.parse(sessionStorage.getItem(STATUS_KEY + videoId)); } catch { return null; }
}

function storeStatus(videoId, answer) {
  try { sessionStorage.setItem(STATUS_KEY + videoId, JSON.stringify(answer)); } catch { /* off */ }
}

// One conditional GET: the last answer's ETag goes in If-None-Match, and a 304 (no body) means
// nothing changed. The last answer is kept per tab, so a reload asks conditionally too.
async function fetchStatus(videoId, last) {
  const response = await fetch(`/api/videos/${encodeURIComponent(videoId)}`, {
    credentials: "same-origin",
    cache: "no-store", // the page keeps the answer itself; every poll reaches the API
    headers: last && last.etag ? { "If-None-Match": last.etag } : {},
  });
  if (response.status === 304 && last) return { ...last, changed: false };
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = data.error || { code: "http_" + response.status, message: response.statusText };
    throw new ApiError(response.status, error.code, error.message);
  }
  const answer = { etag: response.headers.get("ETag"), video: data };
  storeStatus(videoId, answer);
  return { ...answer, changed: true };
}

async function poll(videoId) {
  let last = storedStatus(videoId);
  let delay = POLL_MS;
  let shown = false;
  for (;;) {
    let answer;
    try {
      answer = await fetchStatus(videoId, last);
    } catch (error) {
      if (error instanceof ApiError && error.status !== 429 && error.status < 500) throw error;
      delay = Math.min(delay * 2, POLL_MAX_MS);
      await sleep(delay);
      continue;
    }
    last = answer;
    const video = answer.video;
    if (answer.changed || !shown) showVideo(video);
    shown = true;
    delay = answer.changed ? POLL_MS : Math.min(delay * POLL_BACKOFF, POLL_MAX_MS);
    const step = video.task && video.task.step ? ` (${video.task.step})` : "";
    if (video.status === "ready" && video.thumbnails.length) {
      setStatus("ready", `Ready: ${video.thumbnails.length} thumbnails`);
      await showStoryboard(video.storyboard);
      return;
    }
    if (video.status === "failed") {
      showError(`Processing failed: ${(video.task && video.task.error) || "unknown error"}`);
      return;
    }
    if (video.status === "deleted") {
      setStatus("deleted", "This video was deleted");
      return;
    }
    if (video.status === "uploading") {
      setStatus("uploaded", "Uploaded; waiting for processing to start");
    } else {
      setStatus("processing", `Processing${step}`);
    }
    await sleep(delay);
  }
}

// Show a video already uploaded (/upload?video=<id>, as a reload after an upload leads to).
async function follow(videoId) {
  document.body.dataset.videoId = videoId;
  setStatus("processing", "Loading…");
  try {
    await poll(videoId);
  } catch (error) {
    showError(error.message);
  }
}

async function start(file) {
  $("error").hidden = true;
  $("result").hidden = true;
  $("thumbnails").replaceChildren();
  $("storyboard").hidden = true;
  delete $("storyboard").dataset.vtt;
  const contentType = contentTypeOf(file);
  if (!contentType) {
    showError(`${file.name} is not a supported video (MP4, MOV, AVI, MKV or WebM)`);
    return;
  }
  if (file.size > MAX_BYTES) {
    showError(`${file.name} is ${formatBytes(file.size)}; the limit is 5 GB`);
    return;
  }
  if (file.size === 0) {
    showError(`${file.name} is empty`);
    return;
  }
  $("upload").hidden = false;
  $("name").textContent = file.name;
  $("size").textContent = formatBytes(file.size);
  setProgress(0, file.size);
  setStatus("uploading", "Uploading…");
  try {
    let videoId;
    if (file.size > MULTIPART_THRESHOLD) {
      videoId = await uploadMultipart(file, contentType);
    } else {
      try {
        const target = await api("POST", "/api/upload-url",
          { filename: file.name, contentType, size: file.size });
        videoId = await uploadSingle(file, target);
      } catch (error) {
        if (!(error instanceof ApiError && error.code === "use_multipart")) throw error;
        videoId = await uploadMultipart(file, contentType);
      }
    }
    document.body.dataset.videoId = videoId;
    history.replaceState(null, "", `?video=${encodeURIComponent(videoId)}`);
    setStatus("uploaded", "Uploaded; waiting for processing to start");
    await poll(videoId);
  } catch (error) {
    showError(error.message);
  }
}

function init() {
  const drop = $("drop");
  $("file").addEventListener("change", (event) => {
    if (event.target.files.length) start(event.target.files[0]);
  });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) start(event.dataTransfer.files[0]);
  });
  const videoId = new URLSearchParams(location.search).get("video");
  if (videoId) follow(videoId);
}

init();

// The status page's script: only what needs a browser. The server renders every row, figure
// and banner; this fetches the page's regions (one request per refresh) and swaps them in by
// id, keeps the filter and the state toggles in the URL, and says when the monitor cannot be
// reached or the page has stopped refreshing. It formats no time and writes no markup: the
// only markup it handles is the server's own, autoescaped, parsed inertly by DOMParser.
(() => {
  const d = document;
  d.documentElement.classList.add("js");
  const $ = (id) => d.getElementById(id);
  const REFRESH_MS = Number(d.body.dataset.refreshMs) || 5000;
  const TIMEOUT_MS = Math.max(1500, REFRESH_MS - 500);
  const STALE_MS = 3 * REFRESH_MS;
  const TYPING_MS = 150;
  const PARTIAL = d.body.dataset.partial || "/partial";
  const form = $("filters");
  const input = $("q");
  const boxes = Array.from(form.querySelectorAll("input[type=checkbox][name=state]"));
  // The usage filters and the order: `idle=1`, `archived=1`, `sort` (the default left out).
  const flags = Array.from(form.querySelectorAll("#idle, #archived"));
  const sort = $("sort");
  const live = $("live");
  const liveState = $("live-state");
  const offline = $("offline");
  let lastOk = Date.now();
  let failure = null; // why the last refresh failed; null after a success
  let sequence = 0; // only the newest answer is shown
  let timer = null;
  let typing = null;
  let pagerFocus = null; // the pager link to focus again once its page has come

  // The filter, as the server reads it: every state checked means no `state` at all.
  const writeUrl = () => {
    const params = new URLSearchParams();
    const checked = boxes.filter((box) => box.checked).map((box) => box.value);
    if (checked.length !== boxes.length) {
      if (checked.length) {
        for (const state of checked) params.append("state", state);
      } else {
        params.append("state", "");
      }
    }
    const query = input.value.trim();
    if (query) params.set("q", query);
    for (const box of flags) if (box.checked) params.set(box.name, "1");
    if (sort && sort.value !== "state") params.set("sort", sort.value);
    const search = params.toString();
    const url = location.pathname + (search ? `?${search}` : "");
    if (url !== location.pathname + location.search) history.replaceState(null, "", url);
  };

  // Replace each region whose rendering changed; an unchanged one keeps its node (and focus).
  const swap = (text) => {
    const fresh = new DOMParser().parseFromString(text, "text/html");
    for (const node of fresh.querySelectorAll("[data-region]")) {
      const old = $(node.id);
      if (old && !old.isEqualNode(node)) old.replaceWith(d.adoptNode(node));
    }
  };

  const asOf = () => $("generated").textContent;

  const showLive = () => {
    const stale = Date.now() - lastOk > STALE_MS;
    if (failure !== null) {
      offline.textContent =
        `Cannot reach the monitor (${failure}). The figures below are from its last answer, ` +
        `at ${asOf()}, and may be out of date.`;
    } else if (stale) {
      offline.textContent =
        `The page has not been refreshed for a while. The figures below are from ` +
        `${asOf()} and may be out of date.`;
    }
    const down = failure !== null || stale;
    offline.hidden = !down;
    live.classList.toggle("on", !down);
    live.classList.toggle("off", down);
    liveState.textContent = down ? "Offline · " : "Live · ";
  };

  const refresh = async () => {
    sequence += 1;
    const mine = sequence;
    clearTimeout(timer);
    const control = new AbortController();
    const abort = setTimeout(() => control.abort(), TIMEOUT_MS);
    try {
      const response = await fetch(PARTIAL + location.search, {
        cache: "no-store",
        credentials: "same-origin",
        signal: control.signal,
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const text = await response.text();
      if (mine !== sequence) return;
      swap(text);
      if (pagerFocus !== null) {
        // The pager was swapped out from under the keyboard: give the focus back.
        const again =
          d.querySelector(`#pager a[rel="${pagerFocus}"]`) || d.querySelector("#pager a");
        if (again) again.focus();
        pagerFocus = null;
      }
      lastOk = Date.now();
      failure = null;
      d.body.dataset.refreshes = String(Number(d.body.dataset.refreshes || 0) + 1);
    } catch (error) {
      if (mine !== sequence) return;
      if (error?.name === "AbortError") failure = "no answer in time";
      else if (/^HTTP /.test(error?.message)) failure = error.message;
      else failure = "connection failed";
    } finally {
      clearTimeout(abort);
      if (mine === sequence) {
        showLive();
        timer = setTimeout(refresh, REFRESH_MS);
      }
    }
  };

  const changed = () => {
    clearTimeout(typing);
    writeUrl();
    refresh();
  };

  input.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(changed, TYPING_MS);
  });
  for (const box of [...boxes, ...flags]) box.addEventListener("change", changed);
  if (sort) sort.addEventListener("change", changed);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    changed();
  });
  // The pager's links work without the script; with it, they swap the rows in place.
  d.addEventListener("click", (event) => {
    const link = event.target instanceof Element ? event.target.closest("#pager a[href]") : null;
    if (!link || event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    pagerFocus = link.rel;
    const url = new URL(link.href);
    history.replaceState(null, "", url.pathname + url.search);
    refresh();
  });
  d.addEventListener("visibilitychange", () => {
    if (!d.hidden) refresh();
  });
  showLive();
  setInterval(showLive, 1000);
  timer = setTimeout(refresh, REFRESH_MS);
})();

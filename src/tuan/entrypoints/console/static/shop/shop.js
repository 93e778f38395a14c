// Tuan storefront: the countdown (server time as the reference) and once-only forms.
// Loaded before Alpine (both deferred, in order), so the component exists when Alpine starts.
document.addEventListener("alpine:init", () => {
  window.Alpine.data("countdown", (deadline, serverNow, lang) => ({
    offset: serverNow - Date.now(), // the device clock may be off: count on the server's
    left: Math.max(0, Math.floor((deadline - serverNow) / 1000)),
    timer: null,
    init() {
      this.tick();
      this.timer = setInterval(() => this.tick(), 1000);
    },
    destroy() {
      clearInterval(this.timer);
    },
    tick() {
      this.left = Math.max(0, Math.floor((deadline - (Date.now() + this.offset)) / 1000));
    },
    get text() {
      const zh = lang !== "en";
      if (this.left <= 0) return zh ? "已截止" : "ended";
      const d = Math.floor(this.left / 86400);
      const h = Math.floor((this.left % 86400) / 3600);
      const m = Math.floor((this.left % 3600) / 60);
      const s = this.left % 60;
      const pad = (n) => String(n).padStart(2, "0");
      const hms = `${pad(h)}:${pad(m)}:${pad(s)}`;
      return d > 0 ? `${d}${zh ? "天 " : "d "}${hms}` : hms;
    },
  }));

  // The share block: copy the link (the clipboard API needs a secure context; otherwise the
  // selected text is copied the old way).
  window.Alpine.data("share", () => ({
    copied: false,
    copy(input) {
      const done = () => {
        if (window.tuanTrack) window.tuanTrack("share", { properties: { method: "copy" } });
        this.copied = true;
        setTimeout(() => (this.copied = false), 2500);
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done, () => this.fallback(input, done));
      } else {
        this.fallback(input, done);
      }
    },
    fallback(input, done) {
      input.focus();
      input.select();
      try {
        if (document.execCommand("copy")) done();
      } catch (e) {
        /* the link stays selected for the user to copy */
      }
    },
  }));
});

// A form marked data-once sends once: a second tap while the first is on its way does nothing
// (the server's idempotency key covers whatever still gets through).
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-once")) return;
  if (form.dataset.sent === "1") {
    event.preventDefault();
    return;
  }
  form.dataset.sent = "1";
  form.querySelectorAll("button[type=submit]").forEach((b) => b.setAttribute("aria-busy", "true"));
});

// Back from the next page (back/forward cache): the form may be sent again (with its same key).
window.addEventListener("pageshow", (event) => {
  if (!event.persisted) return;
  document.querySelectorAll("form[data-once]").forEach((form) => {
    delete form.dataset.sent;
    form.querySelectorAll("[aria-busy]").forEach((b) => b.removeAttribute("aria-busy"));
  });
});

// Tracking (analytics): a view when a page that says what it shows (body[data-track]) opens, a
// share when the share link is copied, add_to_cart when an open or join form is sent. The
// channel (?ch=) and UTM parameters come from the page's own address; the server adds who and
// when. Sent with navigator.sendBeacon to the same origin, so it survives leaving the page.
(() => {
  const raw = document.body && document.body.dataset.track;
  if (!raw) return;
  let context;
  try {
    context = JSON.parse(raw);
  } catch (e) {
    return;
  }
  const params = new URLSearchParams(window.location.search);
  const base = {};
  for (const [key, value] of Object.entries(context)) {
    if (value !== null && value !== undefined) base[key] = value;
  }
  const channel = params.get("ch");
  if (channel) base.channel = channel.slice(0, 32);
  for (const key of ["utm_source", "utm_medium", "utm_campaign"]) {
    const value = params.get(key);
    if (value) base[key] = value.slice(0, 200);
  }
  const newId = () =>
    window.crypto && typeof window.crypto.randomUUID === "function"
      ? window.crypto.randomUUID()
      : Date.now().toString(36) + Math.random().toString(36).slice(2, 12);

  window.tuanTrack = (type, extra = {}) => {
    const properties = Object.assign({}, base.properties || {}, extra.properties || {});
    const event = Object.assign({}, base, extra, { event_id: `w-${newId()}`, type, properties });
    const body = JSON.stringify({ events: [event] });
    try {
      const blob = new Blob([body], { type: "application/json" });
      if (navigator.sendBeacon && navigator.sendBeacon("/s/track", blob)) return;
    } catch (e) {
      /* fall back to fetch */
    }
    fetch("/s/track", {
      method: "POST",
      body,
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      keepalive: true,
    }).catch(() => {});
  };

  window.tuanTrack("view");
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.track) return;
    if (form.dataset.sent === "1" && form.dataset.tracked === "1") return; // a second tap
    form.dataset.tracked = "1";
    window.tuanTrack(form.dataset.track);
  });
})();

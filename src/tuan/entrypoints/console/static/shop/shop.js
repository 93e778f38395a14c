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

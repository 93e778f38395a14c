// Tuan console: small behaviours shared by every page (htmx and Alpine do the rest).
document.addEventListener("htmx:responseError", (event) => {
  const status = event.detail.xhr.status;
  if (status === 401) window.location.href = "/console/login?next=" + encodeURIComponent(location.pathname);
});

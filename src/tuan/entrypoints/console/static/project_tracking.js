/* Project controls: draw every ECharts option found in a .pt-chart[data-options] element
   (SVG renderer, so the charts stay sharp and testable), and keep them sized to their box. */
(function () {
  "use strict";
  function draw() {
    if (!window.echarts) return;
    document.querySelectorAll(".pt-chart[data-options]").forEach(function (el) {
      var opts;
      try { opts = JSON.parse(el.getAttribute("data-options")); } catch (e) { return; }
      var chart = window.echarts.getInstanceByDom(el) || window.echarts.init(el, null, { renderer: "svg" });
      chart.setOption(opts, true);
      el.setAttribute("data-drawn", "1");
    });
  }
  function resize() {
    if (!window.echarts) return;
    document.querySelectorAll(".pt-chart[data-drawn]").forEach(function (el) {
      var chart = window.echarts.getInstanceByDom(el);
      if (chart) chart.resize();
    });
  }
  /* The trigger form shows the fields of the chosen condition only. */
  function triggerFields() {
    var kind = document.getElementById("tg-kind");
    if (!kind) return;
    function sync() {
      document.querySelectorAll("[data-trigger-kinds]").forEach(function (el) {
        var kinds = el.getAttribute("data-trigger-kinds").split(" ");
        el.hidden = kinds.indexOf(kind.value) < 0;
      });
    }
    kind.addEventListener("change", sync);
    sync();
  }
  document.addEventListener("DOMContentLoaded", function () { draw(); triggerFields(); });
  window.addEventListener("resize", resize);
  document.addEventListener("htmx:afterSettle", draw);
})();

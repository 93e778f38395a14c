// The progress board: ECharts from the data each chart carries, and a pause switch for the
// five-second polling (WCAG 2.2.2: moving, updating content can be paused).
(function () {
  "use strict";
  let paused = false;

  function options(kind, data) {
    const base = { animation: false, tooltip: { trigger: "axis" }, grid: { left: 48, right: 16, top: 36, bottom: 40 } };
    if (kind === "hourly") {
      const colours = ["#1d4ed8", "#93c5fd", "#c2410c", "#fdba74"];
      return Object.assign(base, {
        legend: { top: 0 },
        xAxis: { type: "category", data: data.hours },
        yAxis: { type: "value", minInterval: 1 },
        series: data.series.map((s, i) => ({
          name: s.name, type: "line", data: s.data, connectNulls: false, showSymbol: false,
          lineStyle: { type: i % 2 ? "dashed" : "solid", width: 2 }, itemStyle: { color: colours[i] },
        })),
      });
    }
    if (kind === "formation") {
      return Object.assign(base, {
        grid: { left: 48, right: 16, top: 24, bottom: 90 },
        xAxis: { type: "category", data: data.names, axisLabel: { rotate: 40, interval: 0, width: 110, overflow: "truncate" } },
        yAxis: { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%" } },
        series: [{
          name: data.label, type: "bar", data: data.rates.map((v) => ({
            value: v, itemStyle: { color: v !== null && v < data.target ? "#b91c1c" : "#166534" },
          })),
          markLine: { symbol: "none", data: [{ yAxis: data.target, name: data.target_label }],
                      lineStyle: { color: "#92400e", type: "dashed" }, label: { formatter: data.target_label + " {c}%", position: "insideEndTop" } },
        }],
      });
    }
    return null;
  }

  function draw(root) {
    if (!window.echarts) return;
    root.querySelectorAll(".chart[data-chart]").forEach((el) => {
      let data;
      try { data = JSON.parse(el.dataset.options || "null"); } catch (e) { return; }
      const opts = data && options(el.dataset.chart, data);
      if (!opts) return;
      const chart = window.echarts.getInstanceByDom(el) || window.echarts.init(el, null, { renderer: "svg" });
      chart.setOption(opts, true);
    });
  }

  function dispose(root) {
    if (!window.echarts) return;
    root.querySelectorAll(".chart[data-chart]").forEach((el) => {
      const chart = window.echarts.getInstanceByDom(el);
      if (chart) chart.dispose();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    draw(document);
    const button = document.querySelector(".board-pause");
    if (button) {
      button.addEventListener("click", () => {
        paused = !paused;
        button.setAttribute("aria-pressed", paused ? "true" : "false");
        button.textContent = paused ? button.dataset.labelResume : button.dataset.labelPause;
      });
    }
    window.addEventListener("resize", () => {
      document.querySelectorAll(".chart[data-chart]").forEach((el) => {
        const chart = window.echarts && window.echarts.getInstanceByDom(el);
        if (chart) chart.resize();
      });
    });
  });

  // Polls (hx-trigger="every 5s") are skipped while paused; the filter form still works.
  document.addEventListener("htmx:beforeRequest", (event) => {
    const el = event.detail.elt;
    if (paused && el && el.classList && el.classList.contains("board-poll")) event.preventDefault();
  });
  // The charts' section is about to be replaced (by the poll's out-of-band swap or directly).
  document.addEventListener("htmx:oobBeforeSwap", (event) => {
    const target = event.detail.target;
    if (target && target.id === "board-charts") dispose(target);
  });
  document.addEventListener("htmx:beforeSwap", (event) => {
    const target = event.detail.target;
    if (target && target.id === "board-charts") dispose(target);
  });
  // New content from a poll (htmx:load fires on each swapped-in element): draw its charts.
  document.addEventListener("htmx:load", (event) => {
    const el = event.detail.elt;
    if (el && el.querySelectorAll) draw(el);
  });
})();

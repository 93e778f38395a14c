// Projects pages: kanban drag and drop (native HTML5) with a no-JS "move to" form on each card,
// the Gantt chart (ECharts custom series) and the workload chart (stacked bars).
(function () {
  "use strict";

  // -- kanban ------------------------------------------------------------------------------
  function csrfToken() {
    var input = document.querySelector("input[name=csrf_token]");
    return input ? input.value : "";
  }

  function setupBoard(board) {
    var url = board.getAttribute("data-move-url");
    var dragged = null;

    function send(taskId, status, position, focusKey) {
      var body = new FormData();
      body.append("csrf_token", csrfToken());
      body.append("task_id", taskId);
      body.append("status", status);
      if (position !== null) body.append("position", String(position));
      board.setAttribute("aria-busy", "true");
      return fetch(url, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        headers: { "HX-Request": "true", "X-CSRF-Token": csrfToken() },
      })
        .then(function (response) {
          if (response.status === 401) { window.location.reload(); return ""; }
          return response.text();
        })
        .then(function (html) {
          if (html) board.innerHTML = html;
          board.removeAttribute("aria-busy");
          if (focusKey) {
            var sel = board.querySelector("#mv-" + focusKey);
            if (sel) sel.focus();
          }
        })
        .catch(function () { board.removeAttribute("aria-busy"); window.location.reload(); });
    }

    function dropIndex(list, y) {
      var cards = Array.prototype.filter.call(list.children, function (c) {
        return c.classList.contains("pj-card") && c !== dragged;
      });
      for (var i = 0; i < cards.length; i++) {
        var box = cards[i].getBoundingClientRect();
        if (y < box.top + box.height / 2) return i;
      }
      return cards.length;
    }

    board.addEventListener("dragstart", function (event) {
      var card = event.target.closest && event.target.closest(".pj-card[draggable=true]");
      if (!card) return;
      dragged = card;
      card.classList.add("dragging");
      event.dataTransfer.effectAllowed = "move";
      event.dataTransfer.setData("text/plain", card.getAttribute("data-task"));
    });
    board.addEventListener("dragend", function () {
      if (dragged) dragged.classList.remove("dragging");
      dragged = null;
      board.querySelectorAll(".drop-target").forEach(function (el) { el.classList.remove("drop-target"); });
    });
    board.addEventListener("dragover", function (event) {
      var list = event.target.closest && event.target.closest("[data-dropzone]");
      if (!list || !dragged) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
      board.querySelectorAll(".drop-target").forEach(function (el) {
        if (el !== list) el.classList.remove("drop-target");
      });
      list.classList.add("drop-target");
    });
    board.addEventListener("drop", function (event) {
      var list = event.target.closest && event.target.closest("[data-dropzone]");
      if (!list) return;
      event.preventDefault();
      var taskId = event.dataTransfer.getData("text/plain") || (dragged && dragged.getAttribute("data-task"));
      if (!taskId) return;
      var index = dropIndex(list, event.clientY);
      list.classList.remove("drop-target");
      send(taskId, list.getAttribute("data-dropzone"), index, null);
    });
    // The "move to" form: without JS it posts and the page reloads; with JS, same endpoint.
    board.addEventListener("submit", function (event) {
      var form = event.target.closest && event.target.closest("form.pj-move");
      if (!form) return;
      event.preventDefault();
      var taskId = form.querySelector("input[name=task_id]").value;
      send(taskId, form.querySelector("select[name=status]").value, null, taskId);
    });
  }

  // -- charts ------------------------------------------------------------------------------
  function pad(n) { return n < 10 ? "0" + n : String(n); }
  function stamp(ms) {
    var d = new Date(ms);
    return pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
  }
  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function drawGantt(el) {
    var data = JSON.parse(el.getAttribute("data-gantt"));
    var chart = window.echarts.init(el, null, { renderer: "svg", useUTC: true });
    var bars = data.bars.map(function (b) {
      return { value: [b.row, b.start, b.end, b.critical ? 1 : 0, b.done ? 1 : 0], bar: b };
    });
    var arrows = data.arrows.map(function (a) {
      return { value: [a.from[0], a.from[1], a.to[0], a.to[1]], type: a.type };
    });

    function renderBar(params, api) {
      var row = api.value(0);
      var start = api.coord([api.value(1), row]);
      var end = api.coord([api.value(2), row]);
      var height = api.size([0, 1])[1] * 0.6;
      var width = Math.max(end[0] - start[0], 5);
      var color = api.value(4) ? "#15803d" : api.value(3) ? "#b91c1c" : "#2563eb";
      return {
        type: "rect",
        shape: { x: start[0], y: start[1] - height / 2, width: width, height: height, r: 2 },
        style: { fill: color, stroke: api.value(3) ? "#7f1d1d" : null, lineWidth: api.value(3) ? 1.5 : 0 },
      };
    }

    function renderArrow(params, api) {
      var p1 = api.coord([api.value(0), api.value(1)]);
      var p2 = api.coord([api.value(2), api.value(3)]);
      var bend = p1[0] + 8;
      var points = [p1, [bend, p1[1]], [bend, p2[1]], [p2[0] - 1, p2[1]]];
      var dir = p2[0] >= bend ? 1 : -1;
      var tip = [p2[0], p2[1]];
      return {
        type: "group",
        children: [
          { type: "polyline", shape: { points: points }, style: { stroke: "#52606d", fill: null, lineWidth: 1 } },
          {
            type: "polygon",
            shape: { points: [tip, [tip[0] - 6 * dir, tip[1] - 4], [tip[0] - 6 * dir, tip[1] + 4]] },
            style: { fill: "#52606d" },
          },
        ],
      };
    }

    chart.setOption({
      animation: false,
      useUTC: true,
      tooltip: {
        trigger: "item",
        formatter: function (p) {
          if (p.seriesId === "bars") {
            var b = p.data.bar;
            return "<b>" + escapeHtml(b.key) + "</b> " + escapeHtml(b.title) + "<br>" + stamp(b.start) + " → " + stamp(b.end) +
              "<br>" + escapeHtml(data.text.float) + ": " + escapeHtml(b.float) +
              (b.critical ? "<br><b>" + escapeHtml(data.text.critical) + "</b>" : "");
          }
          if (p.seriesId === "milestones") return "◆ " + escapeHtml(p.data.name) + "<br>" + stamp(p.data.value[0]);
          return "";
        },
      },
      grid: { left: 270, right: 30, top: 40, bottom: 50 },
      xAxis: {
        type: "time", position: "top", splitLine: { show: true, lineStyle: { color: "#e4e7eb" } },
        axisLabel: { hideOverlap: true, color: "#52606d", formatter: { day: "{MM}-{dd}", hour: "{HH}:{mm}", month: "{yyyy}-{MM}" } },
      },
      yAxis: {
        type: "category", data: data.rows, inverse: true,
        axisTick: { show: false },
        axisLabel: {
          width: 250, overflow: "truncate", color: "#1f2933",
          formatter: function (v) { return v.charAt(0) === "▸" ? "{ph|" + v + "}" : v; },
          rich: { ph: { fontWeight: "bold", color: "#c2410c" } },
        },
        splitLine: { show: true, lineStyle: { color: "#f0f4f8" } },
      },
      dataZoom: [
        { type: "inside", xAxisIndex: 0, filterMode: "weakFilter" },
        { type: "slider", xAxisIndex: 0, filterMode: "weakFilter", height: 18, bottom: 10 },
      ],
      series: [
        {
          id: "arrows", type: "custom", renderItem: renderArrow, data: arrows,
          encode: { x: [0, 2], y: [1, 3] }, silent: true, z: 1,
        },
        {
          id: "bars", type: "custom", renderItem: renderBar, data: bars,
          encode: { x: [1, 2], y: 0 }, z: 2,
          markLine: {
            silent: true, symbol: "none",
            lineStyle: { color: "#c2410c", type: "solid", width: 2 },
            label: { formatter: data.text.today, color: "#c2410c" },
            data: [{ xAxis: data.now }],
          },
        },
        {
          id: "milestones", type: "scatter", symbol: "diamond", symbolSize: 14, z: 3,
          itemStyle: { color: "#7c3aed" },
          data: data.milestones.map(function (m) {
            return { value: [m.x, m.row], name: m.name, itemStyle: { color: m.done ? "#15803d" : "#7c3aed" } };
          }),
          encode: { x: 0, y: 1 },
        },
      ],
    });
    chart.on("click", function (p) {
      if (p.seriesId === "bars" && p.data && p.data.bar) window.location.href = p.data.bar.href;
    });
    el.setAttribute("data-rendered", "1");
    return chart;
  }

  function drawWorkload(el) {
    var data = JSON.parse(el.getAttribute("data-workload"));
    var chart = window.echarts.init(el, null, { renderer: "svg" });
    chart.setOption({
      animation: false,
      tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
      legend: { type: "scroll", top: 0 },
      grid: { left: 50, right: 20, top: 40, bottom: 30 },
      xAxis: { type: "category", data: data.weeks },
      yAxis: { type: "value", name: data.unit },
      series: data.series.map(function (s) {
        return { type: "bar", stack: "hours", name: s.name, data: s.data, emphasis: { focus: "series" } };
      }),
    });
    el.setAttribute("data-rendered", "1");
    return chart;
  }

  function start() {
    document.documentElement.classList.add("js");
    var board = document.getElementById("board");
    if (board) setupBoard(board);
    var charts = [];
    if (window.echarts) {
      var gantt = document.querySelector("[data-gantt]");
      if (gantt) charts.push(drawGantt(gantt));
      var load = document.querySelector("[data-workload]");
      if (load) charts.push(drawWorkload(load));
    }
    window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

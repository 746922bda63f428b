// A small SVG line chart, written for the taskq dashboard (no library, works offline).
// lineChart(container, series, options): series = [{name, color, points: [[time, value], ...]}],
// time in POSIX seconds; options = {from, to, unit}.
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";

  function el(name, attrs, text) {
    var node = document.createElementNS(NS, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    var power = Math.pow(10, Math.floor(Math.log10(value)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * power >= value) return steps[i] * power;
    return 10 * power;
  }

  function clock(seconds) {
    var d = new Date(seconds * 1000);
    return String(d.getHours()).padStart(2, "0") + ":" + String(d.getMinutes()).padStart(2, "0");
  }

  function format(value, unit) {
    if (unit === "s") {
      if (value === 0) return "0";
      if (value >= 1) return value.toFixed(1) + " s";
      if (value >= 0.001) return (value * 1000).toFixed(value >= 0.01 ? 0 : 1) + " ms";
      return (value * 1e6).toFixed(0) + " µs";
    }
    return value >= 100 ? value.toFixed(0) : value.toFixed(value >= 10 ? 1 : 2);
  }

  window.lineChart = function (container, series, options) {
    options = options || {};
    var width = 600, height = 220, left = 52, right = 10, top = 10, bottom = 24;
    var from = options.from, to = options.to;
    var max = 0;
    series.forEach(function (s) { s.points.forEach(function (p) { if (p[1] > max) max = p[1]; }); });
    max = niceMax(max);
    var svg = el("svg", { viewBox: "0 0 " + width + " " + height, class: "chart", role: "img", "aria-label": options.title || "chart" });
    var x = function (t) { return left + (width - left - right) * (t - from) / Math.max(1, to - from); };
    var y = function (v) { return top + (height - top - bottom) * (1 - v / max); };
    for (var i = 0; i <= 4; i++) {
      var value = max * i / 4;
      svg.appendChild(el("line", { x1: left, x2: width - right, y1: y(value), y2: y(value), class: "grid" }));
      svg.appendChild(el("text", { x: left - 6, y: y(value) + 3, "text-anchor": "end" }, format(value, options.unit)));
    }
    for (var j = 0; j <= 5; j++) {
      var t = from + (to - from) * j / 5;
      svg.appendChild(el("text", { x: x(t), y: height - 6, "text-anchor": "middle" }, clock(t)));
    }
    series.forEach(function (s) {
      if (!s.points.length) return;
      var path = s.points.map(function (p, k) { return (k ? "L" : "M") + x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1); }).join(" ");
      svg.appendChild(el("path", { d: path, fill: "none", stroke: s.color, "stroke-width": 1.8, "data-series": s.name }));
    });
    container.replaceChildren(svg);
  };
})();

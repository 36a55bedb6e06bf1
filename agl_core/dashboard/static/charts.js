/* Small SVG line charts for metric series, TensorBoard style: raw points faint, an
 * exponential moving average on top, hover read-out by step. No dependencies. */
"use strict";

const AglCharts = (() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const W = 560, H = 280;
  const M = { top: 16, right: 18, bottom: 34, left: 58 };
  const PALETTE = ["#e8710a", "#1a73e8", "#12b5cb", "#9334e6", "#188038", "#d93025", "#f9ab00"];
  const MAX_MARKERS = 300; // beyond this, dots only clutter the line

  function svg(tag, attrs = {}) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    return el;
  }

  /* About `count` round tick values covering [lo, hi]. */
  function ticks(lo, hi, count) {
    if (hi === lo) { hi = lo + 1; lo = lo - 1; }
    const raw = (hi - lo) / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
    return out;
  }

  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    const a = Math.abs(v);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
    return (+v.toPrecision(4)).toString();
  }

  /* TensorBoard's debiased exponential moving average. */
  function smooth(points, weight) {
    if (weight <= 0) return points;
    let last = 0, n = 0;
    return points.map(([x, y]) => {
      n += 1;
      last = last * weight + (1 - weight) * y;
      return [x, last / (1 - Math.pow(weight, n))];
    });
  }

  function extent(values) {
    let lo = Infinity, hi = -Infinity;
    for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
    return [lo, hi];
  }

  /* A chart in `container`; call `.update(series, smoothing)` with
   * series = [{name, points: [[step, value], ...]}]. */
  function lineChart(container, title) {
    const card = document.createElement("div");
    card.className = "chart-card";
    const head = document.createElement("div");
    head.className = "chart-title";
    head.textContent = title;
    const legend = document.createElement("div");
    legend.className = "chart-legend";
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
    const tip = document.createElement("div");
    tip.className = "chart-tip";
    tip.hidden = true;
    card.append(head, legend, root, tip);
    container.append(card);

    let state = null;

    function update(series, smoothing = 0) {
      series = series.filter((s) => s.points.length);
      root.replaceChildren();
      legend.replaceChildren();
      if (!series.length) {
        const t = svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "chart-empty" });
        t.textContent = "no data yet";
        root.append(t);
        state = null;
        return;
      }
      const [x0, x1] = extent(series.flatMap((s) => s.points.map((p) => p[0])));
      const [y0, y1] = extent(series.flatMap((s) => s.points.map((p) => p[1])));
      const pad = (y1 - y0) * 0.06 || Math.abs(y0) * 0.1 || 1;
      const yt = ticks(y0 - pad, y1 + pad, 5);
      const xt = ticks(x0, x1 === x0 ? x0 + 1 : x1, 6).filter((v) => Number.isInteger(v));
      const ylo = Math.min(yt[0], y0 - pad), yhi = Math.max(yt[yt.length - 1], y1 + pad);
      const xlo = x0, xhi = x1 === x0 ? x0 + 1 : x1;
      const sx = (x) => M.left + ((x - xlo) / (xhi - xlo)) * (W - M.left - M.right);
      const sy = (y) => H - M.bottom - ((y - ylo) / (yhi - ylo)) * (H - M.top - M.bottom);

      const grid = svg("g", { class: "chart-grid" });
      for (const v of yt) {
        if (v < ylo || v > yhi) continue;
        grid.append(svg("line", { x1: M.left, x2: W - M.right, y1: sy(v), y2: sy(v) }));
        const label = svg("text", { x: M.left - 8, y: sy(v) + 4, "text-anchor": "end", class: "chart-tick" });
        label.textContent = fmt(v);
        grid.append(label);
      }
      for (const v of xt) {
        if (v < xlo || v > xhi) continue;
        grid.append(svg("line", { x1: sx(v), x2: sx(v), y1: M.top, y2: H - M.bottom, class: "chart-vgrid" }));
        const label = svg("text", { x: sx(v), y: H - M.bottom + 18, "text-anchor": "middle", class: "chart-tick" });
        label.textContent = fmt(v);
        grid.append(label);
      }
      const xlabel = svg("text", { x: W - M.right, y: H - 4, "text-anchor": "end", class: "chart-axis-label" });
      xlabel.textContent = "step";
      grid.append(xlabel, svg("line", { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom, class: "chart-axis" }));
      root.append(grid);

      series.forEach((s, i) => {
        const color = s.color || PALETTE[i % PALETTE.length];
        const path = (pts) => pts.map(([x, y], j) => `${j ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
        const g = svg("g", { class: "series", "data-name": s.name, "data-points": s.points.length });
        const shown = smooth(s.points, smoothing);
        if (smoothing > 0) g.append(svg("path", { d: path(s.points), stroke: color, class: "line raw" }));
        g.append(svg("path", { d: path(shown), stroke: color, class: "line" }));
        if (s.points.length <= MAX_MARKERS) {
          for (const [x, y] of s.points) g.append(svg("circle", { cx: sx(x), cy: sy(y), r: 2.6, fill: color, class: "pt" }));
        }
        root.append(g);
        const key = document.createElement("span");
        key.className = "legend-key";
        key.append(swatch(color), document.createTextNode(s.name));
        legend.append(key);
        s.color = color;
        s.shown = shown;
      });
      const cursor = svg("line", { class: "chart-cursor", y1: M.top, y2: H - M.bottom, visibility: "hidden" });
      root.append(cursor);
      state = { series, sx, xlo, xhi, cursor };
    }

    root.addEventListener("mousemove", (ev) => {
      if (!state) return;
      const box = root.getBoundingClientRect();
      const px = ((ev.clientX - box.left) / box.width) * W;
      const step = state.xlo + ((px - M.left) / (W - M.left - M.right)) * (state.xhi - state.xlo);
      let best = null;
      for (const s of state.series) {
        for (const p of s.points) if (best === null || Math.abs(p[0] - step) < Math.abs(best - step)) best = p[0];
      }
      if (best === null) return;
      state.cursor.setAttribute("x1", state.sx(best));
      state.cursor.setAttribute("x2", state.sx(best));
      state.cursor.setAttribute("visibility", "visible");
      const head = document.createElement("div");
      head.className = "muted";
      head.textContent = `step ${best}`;
      tip.replaceChildren(head);
      for (const s of state.series) {
        const j = s.points.findIndex((p) => p[0] === best);
        if (j < 0) continue;
        const row = document.createElement("div");
        const value = document.createElement("b");
        value.textContent = fmt(s.shown[j][1]);
        row.append(swatch(s.color), `${s.name} `, value);
        if (s.shown !== s.points) {
          const raw = document.createElement("span");
          raw.className = "muted";
          raw.textContent = `(raw ${fmt(s.points[j][1])})`;
          row.append(" ", raw);
        }
        tip.append(row);
      }
      tip.hidden = false;
      const left = ev.clientX - card.getBoundingClientRect().left;
      tip.style.left = `${Math.min(left + 12, card.clientWidth - 190)}px`;
    });
    root.addEventListener("mouseleave", () => {
      tip.hidden = true;
      if (state) state.cursor.setAttribute("visibility", "hidden");
    });

    return { update, element: card };
  }

  /* A series' colour mark; set through the CSSOM, which the CSP allows (inline style attributes it refuses). */
  function swatch(color) {
    const mark = document.createElement("i");
    mark.style.background = color;
    return mark;
  }

  return { lineChart, fmt, ticks, smooth };
})();

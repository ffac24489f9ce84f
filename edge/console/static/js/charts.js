// Charts drawn as SVG, node by node: a line chart of time buckets and a stacked bar chart of
// days, each with a legend and a hover read-out. Colours come from the style sheet
// (.series-0 … .series-7), so nothing here sets a style.

import { h, s, fmtCompact } from "./dom.js";

const WIDTH = 720;
const MARGIN = { left: 52, right: 14, top: 12, bottom: 26 };
export const PALETTE_SIZE = 8;

/** The top of the axis: four equal steps of a round size, at least `value` in all. Counts
 * (integer) get whole steps. */
function niceMax(value, integer) {
  const TICKS = 4;
  if (!(value > 0)) return integer ? TICKS : 1;
  const raw = value / TICKS;
  const power = 10 ** Math.floor(Math.log10(raw));
  let step = 10 * power;
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (raw <= m * power) {
      step = m * power;
      break;
    }
  }
  if (integer) step = Math.max(1, Math.ceil(step));
  return step * TICKS;
}

function pad(n) {
  return String(n).padStart(2, "0");
}

function timeLabel(unix, span) {
  const d = new Date(unix * 1000);
  if (span <= 2 * 86400) return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

function fullTime(unix, bucket) {
  const d = new Date(unix * 1000);
  const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return bucket >= 86400 ? day : `${day} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function legend(series) {
  if (series.length < 2) return null;
  return h("ul", { class: "legend" },
    series.map((one, i) => h("li", {}, h("span", { class: `swatch series-${i % PALETTE_SIZE}` }), one.name)));
}

function frame(height, label) {
  return s("svg", { viewBox: `0 0 ${WIDTH} ${height}`, class: "chart-svg", role: "img", "aria-label": label });
}

function yAxis(svg, height, max, format) {
  const plotBottom = height - MARGIN.bottom;
  const plotHeight = plotBottom - MARGIN.top;
  for (let i = 0; i <= 4; i += 1) {
    const value = (max * i) / 4;
    const y = plotBottom - (plotHeight * i) / 4;
    svg.append(
      s("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y, y2: y, class: i === 0 ? "axis" : "grid" }),
      s("text", { x: MARGIN.left - 6, y: y + 4, class: "tick tick-y" }, format(value)),
    );
  }
}

/** A read-out that follows the pointer: a guide line and a box of lines of text. */
function hover(svg, height, positions, linesAt) {
  const guide = s("line", { y1: MARGIN.top, y2: height - MARGIN.bottom, class: "guide hidden" });
  const box = s("g", { class: "readout hidden" });
  const overlay = s("rect", {
    x: MARGIN.left, y: MARGIN.top, width: WIDTH - MARGIN.left - MARGIN.right,
    height: height - MARGIN.top - MARGIN.bottom, class: "overlay",
  });
  svg.append(guide, box, overlay);
  const hide = () => {
    guide.classList.add("hidden");
    box.classList.add("hidden");
  };
  overlay.addEventListener("pointerleave", hide);
  overlay.addEventListener("pointermove", (event) => {
    const rect = svg.getBoundingClientRect();
    const x = ((event.clientX - rect.left) / rect.width) * WIDTH;
    let index = 0;
    for (let i = 1; i < positions.length; i += 1) {
      if (Math.abs(positions[i] - x) < Math.abs(positions[index] - x)) index = i;
    }
    const lines = linesAt(index);
    guide.setAttribute("x1", positions[index]);
    guide.setAttribute("x2", positions[index]);
    const width = Math.max(...lines.map((line) => line.length)) * 6.6 + 16;
    const boxHeight = lines.length * 15 + 8;
    const left = positions[index] + width + 12 > WIDTH ? positions[index] - width - 8 : positions[index] + 8;
    box.replaceChildren(
      s("rect", { x: left, y: MARGIN.top, width, height: boxHeight, rx: 4, class: "readout-box" }),
      ...lines.map((line, i) => s("text", { x: left + 8, y: MARGIN.top + 16 + i * 15, class: i === 0 ? "readout-title" : "readout-line" }, line)),
    );
    guide.classList.remove("hidden");
    box.classList.remove("hidden");
  });
}

function empty(svg, height, text) {
  svg.append(s("text", { x: WIDTH / 2, y: height / 2, class: "chart-empty" }, text));
}

/**
 * A line chart of time buckets.
 * times: bucket starts (Unix seconds); series: [{name, values}] aligned with times (null: a gap).
 */
export function lineChart({ title, times, bucket, series, format = fmtCompact, height = 190, emptyText = "No requests in this window" }) {
  const svg = frame(height, title);
  const all = series.flatMap((one) => one.values).filter((v) => v !== null && v !== undefined);
  const max = niceMax(Math.max(0, ...all), all.every(Number.isInteger));
  yAxis(svg, height, max, format);
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotBottom = height - MARGIN.bottom;
  const plotHeight = plotBottom - MARGIN.top;
  const n = times.length;
  const xs = times.map((_, i) => MARGIN.left + (n > 1 ? (plotWidth * i) / (n - 1) : plotWidth / 2));
  const y = (v) => plotBottom - (plotHeight * v) / max;
  const span = n ? times[n - 1] - times[0] + bucket : 0;
  const labels = Math.min(7, n);
  for (let j = 0; j < labels; j += 1) {
    const i = labels > 1 ? Math.round(((n - 1) * j) / (labels - 1)) : 0;
    svg.append(s("text", { x: xs[i], y: height - 8, class: "tick tick-x" }, timeLabel(times[i], span)));
  }
  if (!all.some((v) => v > 0)) {
    empty(svg, height, emptyText);
  }
  // The first series (the largest, after topSeries) is drawn last, on top of the others.
  [...series.entries()].reverse().forEach(([k, one]) => {
    const cls = `series-${k % PALETTE_SIZE}`;
    let d = "";
    let drawing = false;
    one.values.forEach((v, i) => {
      if (v === null || v === undefined) {
        drawing = false;
        return;
      }
      d += `${drawing ? "L" : "M"}${xs[i].toFixed(1)} ${y(v).toFixed(1)} `;
      drawing = true;
    });
    if (series.length === 1 && d) {
      const values = one.values.map((v) => v ?? 0);
      const area = `M${xs[0]} ${plotBottom} ` + values.map((v, i) => `L${xs[i].toFixed(1)} ${y(v).toFixed(1)}`).join(" ") + ` L${xs[n - 1]} ${plotBottom} Z`;
      svg.append(s("path", { d: area, class: `area ${cls}` }));
    }
    if (d) svg.append(s("path", { d, class: `line ${cls}` }));
    // A value between two gaps draws no line: it gets a dot.
    one.values.forEach((v, i) => {
      const gap = (j) => j < 0 || j >= n || one.values[j] === null || one.values[j] === undefined;
      if (v !== null && v !== undefined && gap(i - 1) && gap(i + 1)) {
        svg.append(s("circle", { cx: xs[i], cy: y(v), r: 3, class: `dot-point ${cls}` }));
      }
    });
  });
  if (n) {
    hover(svg, height, xs, (i) => [
      fullTime(times[i], bucket),
      ...series.map((one) => `${one.name}: ${one.values[i] === null || one.values[i] === undefined ? "—" : format(one.values[i])}`),
    ]);
  }
  return h("figure", { class: "chart" }, h("figcaption", {}, title), svg, legend(series));
}

/**
 * A stacked bar chart: one bar per category (a day), one stacked part per series.
 */
export function barChart({ title, categories, series, format = fmtCompact, height = 210, emptyText = "Nothing in this window" }) {
  const svg = frame(height, title);
  const totals = categories.map((_, i) => series.reduce((sum, one) => sum + (one.values[i] ?? 0), 0));
  const max = niceMax(Math.max(0, ...totals), totals.every(Number.isInteger));
  yAxis(svg, height, max, format);
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotBottom = height - MARGIN.bottom;
  const plotHeight = plotBottom - MARGIN.top;
  const n = categories.length;
  const slot = n ? plotWidth / n : plotWidth;
  const barWidth = Math.max(2, Math.min(38, slot * 0.7));
  const centers = categories.map((_, i) => MARGIN.left + slot * (i + 0.5));
  const every = Math.max(1, Math.ceil(n / 10));
  categories.forEach((label, i) => {
    if (i % every === 0) svg.append(s("text", { x: centers[i], y: height - 8, class: "tick tick-x" }, label.slice(5)));
    let top = plotBottom;
    series.forEach((one, k) => {
      const value = one.values[i] ?? 0;
      if (!value) return;
      const barHeight = (plotHeight * value) / max;
      top -= barHeight;
      svg.append(s("rect", { x: centers[i] - barWidth / 2, y: top, width: barWidth, height: barHeight, class: `bar series-${k % PALETTE_SIZE}` }));
    });
  });
  if (!totals.some((v) => v > 0)) empty(svg, height, emptyText);
  if (n) {
    hover(svg, height, centers, (i) => [
      `${categories[i]} (UTC)`,
      ...series.filter((one) => one.values[i]).map((one) => `${one.name}: ${format(one.values[i])}`),
      `total: ${format(totals[i])}`,
    ]);
  }
  return h("figure", { class: "chart" }, h("figcaption", {}, title), svg, legend(series));
}

/** Up to `keep` series by total, the rest summed as "other". */
export function topSeries(series, keep = PALETTE_SIZE - 1) {
  const total = (one) => one.values.reduce((sum, v) => sum + (v ?? 0), 0);
  const sorted = [...series].sort((a, b) => total(b) - total(a));
  if (sorted.length <= keep + 1) return sorted;
  const rest = sorted.slice(keep);
  const other = rest[0].values.map((_, i) => rest.reduce((sum, one) => sum + (one.values[i] ?? 0), 0));
  return [...sorted.slice(0, keep), { name: `${rest.length} others`, values: other }];
}

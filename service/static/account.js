// An account's chart: amount against time (Chart.js scatter), flagged points
// marked per rule, the reasons in the tooltip, a log-scale switch. The canvas
// gets data-drawn-points / data-flagged-points: the points Chart.js placed
// inside the plot area (what the browser tests check).
"use strict";

(() => {
  const canvas = document.getElementById("account-chart");
  const source = document.getElementById("chart-data");
  if (!canvas || !source || !window.Chart) return;
  const rows = JSON.parse(source.textContent);
  const COLOURS = ["#c0392b", "#8e44ad", "#d35400", "#16a085", "#2c3e50", "#b7950b", "#1f618d"];
  const STYLES = ["triangle", "rectRot", "rect", "star", "crossRot", "rectRounded", "cross"];
  const plain = [];
  const byRule = new Map();
  for (const row of rows) {
    const point = { x: Date.parse(row.timestamp), y: Number(row.amount), row };
    if (!row.alerts.length) { plain.push(point); continue; }
    for (const alert of row.alerts) {
      if (!byRule.has(alert.rule_id)) byRule.set(alert.rule_id, []);
      byRule.get(alert.rule_id).push(point);
    }
  }
  const datasets = [{
    label: "not flagged", data: plain, pointRadius: 3, pointStyle: "circle",
    backgroundColor: "rgba(90, 110, 130, 0.55)", borderColor: "rgba(90, 110, 130, 0.55)",
  }];
  Array.from(byRule.keys()).sort().forEach((rule, i) => {
    datasets.push({
      label: rule, data: byRule.get(rule), pointRadius: 6,
      pointStyle: STYLES[i % STYLES.length],
      backgroundColor: COLOURS[i % COLOURS.length], borderColor: COLOURS[i % COLOURS.length],
    });
  });

  const time = (ms) => new Date(ms).toISOString().slice(0, 16).replace("T", " ");
  const chart = new Chart(canvas, {
    type: "scatter",
    data: { datasets },
    options: {
      animation: false,
      maintainAspectRatio: false,
      parsing: false,
      scales: {
        x: { type: "linear", title: { display: true, text: "time (UTC)" },
             ticks: { callback: (v) => time(v), maxTicksLimit: 6 } },
        y: { type: "linear", title: { display: true, text: "amount" } },
      },
      plugins: {
        tooltip: {
          // A transaction flagged by two rules is a point in each rule's
          // dataset: list it once.
          filter: (item, index, items) => items.findIndex((o) => o.raw === item.raw) === index,
          callbacks: {
            title: (items) => time(items[0].raw.x),
            label: (item) => {
              const row = item.raw.row;
              const lines = [`transaction ${row.transaction_id}: ${row.amount}`];
              for (const a of row.alerts) lines.push(`${a.rule_id}: ${a.reason}`);
              return lines;
            },
          },
        },
      },
    },
  });

  function count() {
    const area = chart.chartArea;
    let drawn = 0;
    let flagged = 0;
    chart.data.datasets.forEach((ds, i) => {
      const meta = chart.getDatasetMeta(i);
      if (!chart.isDatasetVisible(i)) return;
      for (const el of meta.data) {
        if (el.skip || !Number.isFinite(el.x) || !Number.isFinite(el.y)) continue;
        if (el.x < area.left - 1 || el.x > area.right + 1 || el.y < area.top - 1 || el.y > area.bottom + 1) continue;
        drawn += 1;
        if (i > 0) flagged += 1;
      }
    });
    canvas.dataset.drawnPoints = String(drawn);
    canvas.dataset.flaggedPoints = String(flagged);
    canvas.dataset.scale = chart.options.scales.y.type;
  }
  count();

  document.getElementById("log-scale").addEventListener("change", (event) => {
    const log = event.target.checked;
    // A log axis cannot place 0 (card checks): those points sit at 0.01.
    chart.data.datasets.forEach((ds) => ds.data.forEach((p) => {
      p.y = log ? Math.max(Number(p.row.amount), 0.01) : Number(p.row.amount);
    }));
    chart.options.scales.y.type = log ? "logarithmic" : "linear";
    chart.options.scales.y.title.text = log ? "amount (log scale; 0 shown at 0.01)" : "amount";
    chart.update();
    count();
  });
})();

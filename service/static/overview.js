// The overview's chart: transactions (bars) and alerts (line, right axis) per hour.
"use strict";

(() => {
  const canvas = document.getElementById("hours-chart");
  const source = document.getElementById("overview-data");
  if (!canvas || !source || !window.Chart) return;
  const data = JSON.parse(source.textContent);
  const labels = data.hours.map((h) => h.hour.slice(11, 16));
  const chart = new Chart(canvas, {
    type: "bar",
    data: {
      labels,
      datasets: [
        { label: "transactions", data: data.hours.map((h) => h.transactions), backgroundColor: "rgba(52, 101, 164, 0.7)", yAxisID: "y" },
        { label: "alerts", type: "line", data: data.hours.map((h) => h.alerts), borderColor: "#c0392b", backgroundColor: "#c0392b", yAxisID: "y1" },
      ],
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      scales: {
        x: { title: { display: true, text: "hour (UTC)" } },
        y: { beginAtZero: true, title: { display: true, text: "transactions" } },
        y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false }, title: { display: true, text: "alerts" } },
      },
    },
  });
  canvas.dataset.drawnPoints = String(chart.getDatasetMeta(0).data.length);
})();

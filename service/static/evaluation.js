// The threshold sweep: one POST /evaluate per value (the rule alone), then
// precision against recall as a line of points labelled by the value.
"use strict";

(() => {
  const form = document.getElementById("sweep");
  if (!form) return;
  const ruleSelect = document.getElementById("sw-rule");
  const paramSelect = document.getElementById("sw-parameter");
  const valuesInput = document.getElementById("sw-values");
  const status = document.getElementById("sweep-status");
  const table = document.getElementById("sweep-table");
  const canvas = document.getElementById("sweep-chart");
  const esc = pgfraud.escapeHtml;
  let chart = null;

  const parameters = () => JSON.parse(ruleSelect.selectedOptions[0].dataset.parameters);

  // The parameter's kind and range as the validator has them
  // ({kind: "integer" | "number", minimum, maximum, maximum_excluded}).
  const range = () => JSON.parse(ruleSelect.selectedOptions[0].dataset.ranges || "{}")[paramSelect.value];

  // Values around the live one (x 0.25 to x 4) that the parameter accepts:
  // whole numbers for an integer parameter, inside its range.
  function suggest() {
    const value = Number(parameters()[paramSelect.value]);
    const r = range() || { kind: Number.isInteger(value) ? "integer" : "number", minimum: 0 };
    const factors = [0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4];
    const values = factors
      .map((f) => (r.kind === "integer" ? Math.round(value * f) : Number((value * f).toPrecision(3))))
      .filter((v) => v >= r.minimum && (r.maximum === undefined ||
        (r.maximum_excluded ? v < r.maximum : v <= r.maximum)));
    valuesInput.value = Array.from(new Set(values)).join(", ");
  }

  function fillParameters() {
    paramSelect.innerHTML = Object.keys(parameters()).map((p) => `<option>${esc(p)}</option>`).join("");
    suggest();
  }
  ruleSelect.addEventListener("change", fillParameters);
  paramSelect.addEventListener("change", suggest);
  fillParameters();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const rule = ruleSelect.value;
    const name = paramSelect.value;
    const values = valuesInput.value.split(",").map((v) => v.trim()).filter(Boolean);
    if (!values.length || values.some((v) => !/^[0-9]+(\.[0-9]+)?$/.test(v))) {
      status.textContent = "Values must be numbers >= 0, separated by commas.";
      return;
    }
    const params = new URLSearchParams(location.search);
    const points = [];
    const body = table.tBodies[0];
    body.innerHTML = "";
    for (const [i, value] of values.entries()) {
      status.textContent = `Backtesting ${name} = ${value} (${i + 1} of ${values.length})…`;
      const result = await pgfraud.api("POST", "/evaluate", {
        rules: { [rule]: { ...parameters(), [name]: Number(value) } },
        from: params.get("from") || undefined, to: params.get("to") || undefined,
      });
      if (!result.ok) { status.textContent = "Refused: " + pgfraud.errorText(result); return; }
      const row = result.data.results.find((r) => r.rule_id === rule && r.scenario === "all");
      body.insertAdjacentHTML("beforeend", `<tr><td class="num">${esc(value)}</td><td class="num">${esc(row.flagged)}</td>
        <td class="num">${esc(row.true_positives)}</td><td class="num">${pgfraud.fixed(row.precision_ratio, 4)}</td>
        <td class="num">${pgfraud.fixed(row.recall_ratio, 4)}</td><td class="num">${esc(row.flagged_per_1000 ?? "–")}</td></tr>`);
      if (row.precision_ratio !== null && row.recall_ratio !== null) {
        points.push({ x: Number(row.recall_ratio), y: Number(row.precision_ratio), value });
      }
    }
    table.hidden = false;
    status.textContent = `${name} of ${rule}: ${values.length} values backtested.`;
    if (chart) chart.destroy();
    chart = new Chart(canvas, {
      type: "scatter",
      data: { datasets: [{ label: `${rule}: ${name}`, data: points, showLine: true, pointRadius: 5, borderColor: "#1f618d", backgroundColor: "#1f618d" }] },
      options: {
        animation: false, maintainAspectRatio: false,
        scales: { x: { min: 0, max: 1, title: { display: true, text: "recall" } }, y: { min: 0, max: 1, title: { display: true, text: "precision" } } },
        plugins: { tooltip: { callbacks: { label: (item) => `${name} = ${item.raw.value}: precision ${item.raw.y}, recall ${item.raw.x}` } } },
      },
    });
    canvas.dataset.drawnPoints = String(chart.getDatasetMeta(0).data.length);
  });
})();

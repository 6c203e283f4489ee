// Tuning from the labels: one POST /tune, its figures as a table, and one
// action (PATCH /rules with the body POST /tune gave) to switch the set on.
"use strict";

(() => {
  const form = document.getElementById("tune");
  if (!form) return;
  const status = document.getElementById("tune-status");
  const result = document.getElementById("tune-result");
  const chosenText = document.getElementById("tune-chosen");
  const body = document.querySelector("#tune-table tbody");
  const applyButton = document.getElementById("tune-apply");
  const esc = pgfraud.escapeHtml;
  const value = (id) => document.getElementById(id).value.trim();
  let switchBody = null;

  function rows(set, period, figures) {
    // Each rule's overall row, then any rule's, then any rule's recall per scenario.
    const overall = figures.filter((r) => r.scenario === "all");
    const scenarios = figures.filter((r) => r.rule_id === "any" && r.scenario !== "all");
    return [...overall, ...scenarios].map((r) => `<tr${r.scenario === "all" ? ' class="overall"' : ""}>
      <td>${esc(set)}</td><td>${esc(period)}</td><td>${esc(r.rule_id)}</td><td>${esc(r.scenario)}</td>
      <td class="num">${esc(r.flagged ?? "")}</td><td class="num">${esc(r.true_positives)}</td>
      <td class="num">${r.scenario === "all" ? pgfraud.fixed(r.precision_ratio, 4) : ""}</td>
      <td class="num">${pgfraud.fixed(r.recall_ratio, 4)}</td>
      <td class="num">${r.scenario === "all" ? pgfraud.fixed(r.f1, 4) : ""}</td>
      <td class="num">${r.scenario === "all" ? pgfraud.fixed(r.alerts_per_1000, 2) : ""}</td></tr>`).join("");
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const request = {
      train_from: value("tu-train-from"), train_to: value("tu-train-to"),
      valid_from: value("tu-valid-from"), valid_to: value("tu-valid-to"),
    };
    for (const [field, id] of [["max_alerts_per_1000", "tu-budget"], ["min_precision", "tu-precision"],
      ["min_marginal_precision", "tu-marginal"]]) {
      if (value(id) === "") continue;
      if (!/^[0-9]+(\.[0-9]+)?$/.test(value(id))) { status.textContent = `${field} must be a number.`; return; }
      request[field] = Number(value(id));
    }
    status.textContent = "Tuning… (a minute per million transactions)";
    result.hidden = true;
    const answer = await pgfraud.api("POST", "/tune", request);
    if (!answer.ok) { status.textContent = "Refused: " + pgfraud.errorText(answer); return; }
    const data = answer.data;
    switchBody = data.switch;
    const names = Object.keys(data.chosen);
    chosenText.textContent = names.length ? JSON.stringify(data.chosen) : "none (no rule keeps the constraint)";
    applyButton.hidden = !names.length;
    body.innerHTML = ["chosen", "live"].flatMap((set) => ["training", "validation"].map(
      (period) => rows(set, period, data.figures[set][period] || []))).join("");
    result.hidden = false;
    const search = data.search;
    status.textContent = `Tuned: ${names.length} rule(s) chosen from ${search.candidates} candidates; `
      + `on training ${search.flagged} flagged, ${search.caught} of ${search.labelled} caught.`;
  });

  applyButton.addEventListener("click", async () => {
    if (!switchBody) return;
    status.textContent = "Switching the set on (the alerts are re-scored)…";
    const answer = await pgfraud.api("PATCH", "/rules", switchBody);
    if (!answer.ok) { status.textContent = "Refused: " + pgfraud.errorText(answer); return; }
    const on = answer.data.rules.filter((r) => r.enabled).map((r) => r.rule_id);
    status.textContent = `Switched on: ${on.join(", ")}; every other rule is off.`;
  });
})();

// The rules page: switch a rule on/off; edit a parameter, backtest it
// (POST /evaluate with the candidate rule set and with the live one, over the
// chosen range), then "Switch on" (PATCH /rules): the button is enabled
// only for the exact values just backtested.
"use strict";

(() => {
  const esc = pgfraud.escapeHtml;
  // The range form only feeds the backtests: Enter in it submits nothing
  // (a listener here, not an inline onsubmit, which the page's CSP refuses).
  const rangeForm = document.getElementById("backtest-range");
  if (rangeForm) rangeForm.addEventListener("submit", (event) => event.preventDefault());
  const range = () => ({
    from: document.getElementById("bt-from").value.trim() || undefined,
    to: document.getElementById("bt-to").value.trim() || undefined,
  });

  function liveRules() {
    const rules = {};
    document.querySelectorAll(".rule-card").forEach((card) => {
      if (card.querySelector(".enabled").checked) rules[card.dataset.ruleId] = JSON.parse(card.dataset.live);
    });
    return rules;
  }

  // A parameter's text as a JSON number token (exact: sent as written).
  function candidate(card) {
    const params = {};
    const bad = [];
    card.querySelectorAll(".parameters input").forEach((input) => {
      const text = input.value.trim();
      if (!/^-?[0-9]+(\.[0-9]+)?$/.test(text)) bad.push(input.name);
      params[input.name] = text;
    });
    return { params, bad };
  }

  function row(results, rule) {
    return results.find((r) => r.rule_id === rule && r.scenario === "all") || {};
  }

  function cells(live, next, places) {
    const a = live === null || live === undefined ? null : Number(live);
    const b = next === null || next === undefined ? null : Number(next);
    const change = a === null || b === null ? "" : (b - a >= 0 ? "+" : "") + (b - a).toFixed(places);
    return `<td class="num">${pgfraud.fixed(a, places)}</td><td class="num">${pgfraud.fixed(b, places)}</td><td class="num change">${esc(change)}</td>`;
  }

  // Rows: for the rule, then for any rule: alerts per 1,000 transactions,
  // precision, recall; columns: live, candidate, change.
  function table(rule, live, next) {
    const metrics = [["alerts / 1,000", "flagged_per_1000", 2], ["precision", "precision_ratio", 4], ["recall", "recall_ratio", 4]];
    const lines = [[rule, rule], ["any rule", "any"]].map(([label, id]) => {
      const a = row(live, id);
      const b = row(next, id);
      return metrics.map(([name, key, places], i) => `<tr${i === 0 ? ' class="group"' : ""}>
        ${i === 0 ? `<th scope="rowgroup" rowspan="3">${esc(label)}</th>` : ""}<th scope="row">${name}</th>
        ${cells(a[key], b[key], places)}</tr>`).join("");
    }).join("");
    const n = (row(next, "any").transactions ?? row(next, rule).transactions ?? 0);
    return `<table class="backtest-result">
      <caption>Backtest over ${esc(n)} transactions</caption>
      <thead><tr><th scope="col"></th><th scope="col"></th><th scope="col">live</th><th scope="col">candidate</th><th scope="col">change</th></tr></thead>
      <tbody>${lines}</tbody></table>`;
  }

  const post = (url, body) => pgfraud.api("POST", url, body);

  document.querySelectorAll(".rule-card").forEach((card) => {
    const rule = card.dataset.ruleId;
    const form = card.querySelector(".parameters");
    const apply = card.querySelector(".apply");
    const outcome = card.querySelector(".outcome");
    let tested = null;

    form.addEventListener("input", () => { apply.disabled = true; tested = null; });

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const { params, bad } = candidate(card);
      if (bad.length) {
        outcome.className = "outcome failed";
        outcome.textContent = `${bad.join(", ")}: must be a number like 10 or 0.5`;
        return;
      }
      const numbers = Object.fromEntries(Object.entries(params).map(([k, v]) => [k, Number(v)]));
      const live = liveRules();
      const next = { ...live, [rule]: numbers };
      outcome.className = "outcome busy";
      outcome.textContent = "Backtesting…";
      card.setAttribute("aria-busy", "true");
      const [a, b] = await Promise.all([
        post("/evaluate", { rules: Object.keys(live).length ? live : { [rule]: JSON.parse(card.dataset.live) }, ...range() }),
        post("/evaluate", { rules: next, ...range() }),
      ]);
      card.removeAttribute("aria-busy");
      if (!a.ok || !b.ok) {
        outcome.className = "outcome failed";
        outcome.textContent = "Backtest refused: " + pgfraud.errorText(a.ok ? b : a);
        return;
      }
      outcome.className = "outcome done";
      outcome.innerHTML = table(rule, a.data.results, b.data.results);
      tested = numbers;
      apply.disabled = false;
    });

    apply.addEventListener("click", async () => {
      if (!tested) return;
      const answer = await pgfraud.api("PATCH", "/rules", { [rule]: { parameters: tested, enabled: true } });
      const result = answer.ok ? { ...answer, data: answer.data.rules[0] } : answer;
      const note = document.createElement("p");
      if (!result.ok) {
        note.className = "failed";
        note.setAttribute("role", "alert");
        note.textContent = "Refused: " + pgfraud.errorText(result);
        outcome.appendChild(note);
        return;
      }
      card.dataset.live = JSON.stringify(result.data.parameters);
      card.querySelector(".enabled").checked = result.data.enabled;
      Object.entries(result.data.parameters).forEach(([k, v]) => {
        const input = form.querySelector(`input[name="${k}"]`);
        if (input) { input.value = v; input.dataset.live = v; }
      });
      apply.disabled = true;
      tested = null;
      note.className = "done applied";
      note.textContent = `Switched on: ${rule} now runs with ${JSON.stringify(result.data.parameters)}; the stored history was re-scored.`;
      outcome.appendChild(note);
    });

    card.querySelector(".enabled").addEventListener("change", async (event) => {
      const box = event.target;
      const answer = await pgfraud.api("PATCH", "/rules", { [rule]: { enabled: box.checked } });
      const result = answer.ok ? { ...answer, data: answer.data.rules[0] } : answer;
      if (!result.ok) {
        box.checked = !box.checked;
        outcome.className = "outcome failed";
        outcome.textContent = "Refused: " + pgfraud.errorText(result);
        return;
      }
      outcome.className = "outcome done";
      outcome.textContent = `${rule} is now ${result.data.enabled ? "on" : "off"}.`;
    });
  });
})();

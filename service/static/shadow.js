// The rules page, shadow rules (issue 18): "Run in shadow" on a rule card
// puts the card's parameters in shadow (PUT /rules/<rule_id>/shadow); the
// "Shadow rules" table compares each shadow with its live rule over the
// transactions stored since it started (GET /rules/shadows): alerts per
// 1,000, precision and recall on the labels known so far; "Promote" makes a
// shadow live (POST .../shadow/promote), "Drop" ends it (DELETE .../shadow).
"use strict";

(() => {
  const esc = pgfraud.escapeHtml;
  const box = document.getElementById("shadow-table");
  const status = document.getElementById("shadow-status");
  if (!box) return;

  function say(text, failed) {
    status.className = failed ? "failed" : "done";
    status.textContent = text;
  }

  function metric(name, live, shadow, places) {
    return `<tr><th scope="row">${name}</th><td class="num">${pgfraud.fixed(live, places)}</td>` +
      `<td class="num">${pgfraud.fixed(shadow, places)}</td></tr>`;
  }

  function render(shadows) {
    if (!shadows.length) {
      box.innerHTML = '<p class="empty">No rule is in shadow. "Run in shadow" on a rule below scores its parameters on new transactions without deciding anything.</p>';
      return;
    }
    box.innerHTML = shadows.map((s) => `
      <table class="shadow-result" data-rule-id="${esc(s.rule_id)}">
        <caption><span class="rule rule-${esc(s.rule_id)}">${esc(s.rule_id)}</span>:
          shadow ${esc(JSON.stringify(s.shadow_parameters))} against live
          ${esc(JSON.stringify(s.live_parameters))} (version ${esc(s.live_version)}, ${s.live_enabled ? "on" : "off"}),
          since ${esc(s.started_at)} by ${esc(s.started_by)}:
          ${esc(s.transactions)} transactions, ${esc(s.labelled)} known fraud</caption>
        <thead><tr><th scope="col"></th><th scope="col">live</th><th scope="col">shadow</th></tr></thead>
        <tbody>
          ${metric("alerts", s.live_alerts, s.shadow_alerts, 0)}
          ${metric("alerts / 1,000", s.live_per_1000, s.shadow_per_1000, 2)}
          ${metric("precision", s.live_precision, s.shadow_precision, 4)}
          ${metric("recall", s.live_recall, s.shadow_recall, 4)}
        </tbody>
        <tfoot><tr><td colspan="3" class="buttons">
          <button type="button" class="promote">Promote</button>
          <button type="button" class="drop">Drop</button>
        </td></tr></tfoot>
      </table>`).join("");
  }

  async function refresh() {
    const answer = await pgfraud.api("GET", "/rules/shadows");
    if (!answer.ok) { say("Shadow rules could not be read: " + pgfraud.errorText(answer), true); return; }
    render(answer.data.shadows);
  }

  box.addEventListener("click", async (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    const rule = button.closest("table").dataset.ruleId;
    const url = `/rules/${encodeURIComponent(rule)}/shadow`;
    button.disabled = true;
    const answer = button.classList.contains("promote")
      ? await pgfraud.api("POST", url + "/promote")
      : await pgfraud.api("DELETE", url);
    button.disabled = false;
    if (!answer.ok) { say("Refused: " + pgfraud.errorText(answer), true); return; }
    if (button.classList.contains("promote")) {
      say(`Promoted: ${rule} now runs with ${JSON.stringify(answer.data.parameters)}; the stored history was re-scored.`);
      // The card shows the live parameters now.
      const card = document.getElementById("rule-" + rule);
      if (card) {
        card.dataset.live = JSON.stringify(answer.data.parameters);
        card.querySelector(".enabled").checked = answer.data.enabled;
        Object.entries(answer.data.parameters).forEach(([k, v]) => {
          const input = card.querySelector(`.parameters input[name="${k}"]`);
          if (input) { input.value = v; input.dataset.live = v; }
        });
      }
    } else {
      say(`Dropped the shadow of ${rule}.`);
    }
    refresh();
  });

  document.querySelectorAll(".rule-card").forEach((card) => {
    const button = card.querySelector(".shadow");
    if (!button) return;
    button.addEventListener("click", async () => {
      const rule = card.dataset.ruleId;
      const params = {};
      const bad = [];
      card.querySelectorAll(".parameters input").forEach((input) => {
        const text = input.value.trim();
        if (!/^-?[0-9]+(\.[0-9]+)?$/.test(text)) bad.push(input.name);
        params[input.name] = Number(text);
      });
      if (bad.length) { say(`${rule}: ${bad.join(", ")} must be a number like 10 or 0.5`, true); return; }
      const answer = await pgfraud.api("PUT", `/rules/${encodeURIComponent(rule)}/shadow`, { parameters: params });
      if (!answer.ok) { say("Refused: " + pgfraud.errorText(answer), true); return; }
      say(`${rule} runs in shadow with ${JSON.stringify(answer.data.parameters)} from now on.`);
      refresh();
    });
  });

  refresh();
})();

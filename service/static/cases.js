// The case queue: assign a case and close it (fraud / not fraud) from its section.
// Writes go through the JSON API (POST /cases/<id>/assign, /cases/<id>/close);
// the section then shows what the API answered.
"use strict";

(() => {
  const list = document.getElementById("cases");
  if (!list) return;
  const message = document.getElementById("case-message");
  const esc = pgfraud.escapeHtml;

  function say(text, failed) {
    message.className = "message " + (failed ? "failed" : "done");
    message.textContent = text;
  }

  function showState(section, c) {
    section.className = "case case-" + c.status;
    const parts = [`<span class="case-status">${esc(c.status)}</span>`];
    if (c.assignee) parts.push(`<span class="case-assignee">${esc(c.assignee)}</span>`);
    if (c.resolution) {
      parts.push(`<span class="resolution-${esc(c.resolution)}">${esc(c.resolution.replace("_", " "))}</span> by ${esc(c.closed_by)}`);
    }
    parts.push(`${esc(c.alert_count)} alert(s) on ${esc(c.transaction_count)} transaction(s)`);
    if (c.alerts_raised !== c.alert_count) parts.push(`${esc(c.alerts_raised)} still raised`);
    section.querySelector(".case-state").innerHTML = parts.join(" · ");
  }

  async function act(section, path, body, done) {
    const id = section.dataset.caseId;
    const buttons = section.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    const result = await pgfraud.api("POST", `/cases/${id}/${path}`, body);
    buttons.forEach((b) => { b.disabled = false; });
    if (!result.ok) {
      say(`Case ${id}: ${pgfraud.errorText(result)}`, true);
      return;
    }
    showState(section, result.data);
    done(result.data);
  }

  list.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    const section = button.closest("section.case");
    const id = section.dataset.caseId;
    if (button.classList.contains("assign")) {
      const assignee = section.querySelector(".assignee-input").value.trim();
      act(section, "assign", { assignee }, (c) => say(`Case ${id} assigned to ${c.assignee}.`));
    } else if (button.dataset.resolution) {
      const note = section.querySelector(".case-note-input").value;
      act(section, "close", { resolution: button.dataset.resolution, note }, (c) => {
        if (c.resolution !== "withdrawn") {
          const status = c.resolution === "fraud" ? "confirmed_fraud" : "false_positive";
          section.querySelectorAll("td.status").forEach((cell) => {
            cell.innerHTML = `<span class="status-${status}">${esc(status.replace("_", " "))}</span>`;
          });
        }
        section.querySelector(".case-actions").remove();
        say(`Case ${id} closed as ${c.resolution.replace("_", " ")}: ${c.reviewed} transaction(s) reviewed.`);
      });
    }
  });
  list.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target.classList.contains("assignee-input")) {
      event.preventDefault();
      event.target.closest("div").querySelector("button.assign").click();
    }
  });
})();

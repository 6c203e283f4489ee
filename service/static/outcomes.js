// Decisions on the page (issue 17): how an outcome is shown, and reading a
// transaction's decision for the queue's live rows. Plain JavaScript; the
// same markup as the server's _outcome.html.
"use strict";

const pgfraudOutcome = (() => {
  const esc = pgfraud.escapeHtml;

  // outcome: approve / review / decline, or null (stored before decisions
  // existed); overruled: a list forced it; lists: the names of the lists.
  function html(outcome, overruled, lists) {
    if (!outcome) return '<span class="verdict verdict-none" title="stored before decisions existed">–</span>';
    const names = lists && lists.length ? lists.map(esc).join(", ") : "";
    let text = `<span class="verdict verdict-${esc(outcome)}">${esc(outcome)}</span>`;
    if (overruled && outcome === "approve") {
      text += ` <span class="overruled" title="an allow list forced approve; the alerts are kept">alerts overruled by ${names || "an allow list"}</span>`;
    } else if (overruled) {
      text += ` <span class="by-list" title="a block list forced decline">by ${names || "a block list"}</span>`;
    } else if (names) {
      text += ` <span class="by-list">by ${names}</span>`;
    }
    return text;
  }

  // {outcome, overruled} of a transaction's decision (GET
  // /transactions/<id>/decision); {outcome: null} when it has none.
  async function of(transactionId) {
    const result = await pgfraud.api("GET", `/transactions/${encodeURIComponent(transactionId)}/decision`);
    if (!result.ok) return { outcome: null, overruled: null };
    return { outcome: result.data.outcome, overruled: result.data.overruled };
  }

  return { html, of };
})();

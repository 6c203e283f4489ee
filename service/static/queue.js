// The alert queue: live rows from /alerts/stream, reviews from the row, keyboard.
"use strict";

(() => {
  const table = document.getElementById("alerts");
  if (!table) return;
  const body = table.tBodies[0];
  const message = document.getElementById("review-message");
  const state = document.getElementById("live-state");
  const filters = table.dataset;
  const esc = pgfraud.escapeHtml;

  function rows() { return Array.from(body.rows); }

  function matches(alert) {
    if (filters.filterRule && alert.rule_id !== filters.filterRule) return false;
    if (filters.filterAccount && String(alert.account_id) !== filters.filterAccount) return false;
    if (filters.filterStatus && filters.filterStatus !== "unreviewed") return false;
    if (filters.filterOutcome && alert.outcome !== filters.filterOutcome) return false;
    const t = Date.parse(alert.timestamp);
    if (filters.filterFrom && !(t >= Date.parse(filters.filterFrom))) return false;
    if (filters.filterTo && !(t < Date.parse(filters.filterTo))) return false;
    return true;
  }

  function rowHtml(a) {
    const time = a.timestamp.slice(0, 19).replace("T", " ");
    const show = (v) => (v === null || v === undefined ? "–" : esc(v));
    return `<td class="time"><time datetime="${esc(a.timestamp)}">${esc(time)}</time></td>
      <td><a href="${esc(filters.accountUrl + a.account_id)}">${esc(a.account_id)}</a></td>
      <td class="num">${esc(a.amount)}</td>
      <td><span class="rule rule-${esc(a.rule_id)}">${esc(a.rule_id)}</span></td>
      <td class="num observed">${show(a.observed)} <span class="vs">vs</span> ${show(a.threshold)}</td>
      <td class="reason">${esc(a.reason)}</td>
      <td class="outcome-cell">${pgfraudOutcome.html(a.outcome, a.overruled)}</td>
      <td class="status"><span class="status-unreviewed">unreviewed</span></td>
      <td class="review">
        <label class="visually-hidden" for="note-${esc(a.alert_id)}">Note on transaction ${esc(a.transaction_id)}</label>
        <input id="note-${esc(a.alert_id)}" class="note-input" placeholder="note" maxlength="2000">
        <button type="button" class="confirm" data-status="confirmed_fraud" aria-label="Confirm fraud on transaction ${esc(a.transaction_id)}">Fraud</button>
        <button type="button" class="dismiss" data-status="false_positive" aria-label="False positive on transaction ${esc(a.transaction_id)}">False positive</button>
      </td>`;
  }

  // Where a live alert goes: at the top in raised order; in time order
  // (newest transaction first) before the first row that is older, and not
  // at all when it belongs on a later page.
  function placeOf(alert) {
    if (filters.order !== "time") return body.firstChild;
    const key = (t, id) => [Date.parse(t), Number(id)];
    const [t, id] = key(alert.timestamp, alert.alert_id);
    for (const tr of rows()) {
      const [rt, rid] = key(tr.dataset.ts, tr.dataset.alertId);
      if (rt < t || (rt === t && rid < id)) return tr;
    }
    return filters.more === "true" ? undefined : null;
  }

  function addAlert(alert) {
    if (!matches(alert) || body.querySelector(`tr[data-alert-id="${alert.alert_id}"]`)) return;
    const total = document.getElementById("alert-total");
    if (total) total.textContent = String(Number(total.textContent) + 1);
    const place = placeOf(alert);
    if (place === undefined) return;
    const tr = document.createElement("tr");
    tr.dataset.alertId = alert.alert_id;
    tr.dataset.transactionId = alert.transaction_id;
    tr.dataset.ts = alert.timestamp;
    tr.tabIndex = -1;
    tr.className = "new";
    tr.innerHTML = rowHtml(alert);
    body.insertBefore(tr, place);
    const none = document.getElementById("no-alerts");
    if (none) none.remove();
    table.dataset.liveCount = String(Number(table.dataset.liveCount || 0) + 1);
  }

  // The live feed. The browser reconnects by itself after a dropped
  // connection (sending the last id it received: the stream gives its
  // position when it opens and with each heartbeat), but not after an answer
  // other than 200, such as a 503 while the database is down or every stream
  // slot is taken: then the page reopens the stream itself, with backoff
  // (1 s doubling to 30 s), from the last position it received.
  if (filters.live === "true" && window.EventSource) {
    let position = table.dataset.feedPosition || "";
    let arriving = Promise.resolve();
    let delay = 1000;
    const track = (event) => { if (event.lastEventId) position = event.lastEventId; };
    function interrupted() {
      state.textContent = "Live feed interrupted; reconnecting…";
      table.dataset.streaming = "false";
    }
    function open() {
      const url = "/alerts/stream" + (position ? "?last_event_id=" + encodeURIComponent(position) : "");
      const source = new EventSource(url);
      source.addEventListener("alert", (event) => {
        track(event);
        const alert = JSON.parse(event.data);
        // Its transaction's decision first (the outcome column and filter),
        // one alert at a time so that they keep their order.
        arriving = arriving.then(async () => {
          Object.assign(alert, await pgfraudOutcome.of(alert.transaction_id));
          addAlert(alert);
        });
      });
      source.addEventListener("position", track);
      source.addEventListener("open", () => {
        delay = 1000;
        state.textContent = "Live: new alerts appear at the top.";
        table.dataset.streaming = "true";
      });
      source.addEventListener("error", () => {
        interrupted();
        if (source.readyState !== EventSource.CLOSED) return;  // the browser retries
        table.dataset.reopens = String(Number(table.dataset.reopens || 0) + 1);
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 30000);
      });
    }
    open();
  }

  async function review(tr, status) {
    const note = tr.querySelector(".note-input").value;
    const id = tr.dataset.transactionId;
    tr.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    const result = await pgfraud.api("POST", `/transactions/${id}/review`, { status, note });
    tr.querySelectorAll("button").forEach((b) => { b.disabled = false; });
    if (!result.ok) {
      message.className = "message failed";
      message.textContent = `Transaction ${id}: ${pgfraud.errorText(result)}`;
      return;
    }
    const label = status.replace("_", " ");
    body.querySelectorAll(`tr[data-transaction-id="${id}"] td.status`).forEach((cell) => {
      cell.innerHTML = `<span class="status-${esc(status)}">${esc(label)}</span>` +
        (note ? `<span class="note">${esc(note)}</span>` : "");
    });
    message.className = "message done";
    message.textContent = `Transaction ${id} marked ${label}.`;
  }

  body.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-status]");
    if (button) review(button.closest("tr"), button.dataset.status);
  });
  body.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target.classList.contains("note-input")) {
      event.preventDefault();
      event.target.closest("tr").querySelector("button.confirm").focus();
    }
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const inField = /^(INPUT|SELECT|TEXTAREA)$/.test(event.target.tagName);
    if (inField || document.querySelector("dialog[open]")) return;
    const all = rows();
    if (!all.length) return;
    const current = event.target.closest ? event.target.closest("#alerts tbody tr") : null;
    const index = current ? all.indexOf(current) : -1;
    if (event.key === "j" || event.key === "k") {
      const next = event.key === "j" ? Math.min(index + 1, all.length - 1) : Math.max(index - 1, 0);
      all[next].focus();
      event.preventDefault();
    } else if (current && event.key === "n") {
      current.querySelector(".note-input").focus();
      event.preventDefault();
    } else if (current && (event.key === "c" || event.key === "x")) {
      review(current, event.key === "c" ? "confirmed_fraud" : "false_positive");
      event.preventDefault();
    }
  });
})();

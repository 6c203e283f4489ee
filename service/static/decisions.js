// The Rules page's Decisions section (issue 17): change the policy's
// thresholds and the rules' scores (PUT /policy), create lists (POST /lists),
// add entries with a reason and an optional expiry (POST
// /lists/<name>/entries) and remove them (DELETE
// /lists/<name>/entries/<value>). Writes send the API token (pgfraud.api
// asks for it once); the server validates, and a refusal is shown with the
// field it names. After a change the page is read again from the server.
"use strict";

(() => {
  const section = document.getElementById("decisions");
  if (!section) return;
  const policyMessage = document.getElementById("policy-message");
  const listsMessage = document.getElementById("lists-message");
  const DONE_KEY = "pgfraud-decisions-done";

  function say(element, text, ok) {
    element.className = "message " + (ok ? "done" : "failed");
    element.textContent = text;
  }

  // What the last change did, shown once the page is read again.
  const done = sessionStorage.getItem(DONE_KEY);
  if (done) {
    sessionStorage.removeItem(DONE_KEY);
    const [where, text] = JSON.parse(done);
    say(where === "policy" ? policyMessage : listsMessage, text, true);
  }
  function reloadSaying(where, text) {
    sessionStorage.setItem(DONE_KEY, JSON.stringify([where, text]));
    location.reload();
  }

  // An integer field as a JSON number when it is one, else the text as
  // written, which the server refuses naming the field (it is the one
  // validator: range, decline >= review, finiteness).
  function integer(text) {
    const trimmed = text.trim();
    return /^-?[0-9]{1,9}$/.test(trimmed) ? Number(trimmed) : trimmed;
  }

  const policyForm = document.getElementById("policy-form");
  policyForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {};
    for (const name of ["review_threshold", "decline_threshold", "default_score"]) {
      const input = policyForm.elements[name];
      if (input.value.trim() !== input.dataset.live) body[name] = integer(input.value);
    }
    const scores = {};
    policyForm.querySelectorAll("input.rule-score").forEach((input) => {
      if (input.value.trim() !== input.dataset.live) scores[input.dataset.ruleId] = integer(input.value);
    });
    if (Object.keys(scores).length) body.rule_scores = scores;
    if (!Object.keys(body).length) {
      say(policyMessage, "Nothing changed.", true);
      return;
    }
    const button = document.getElementById("policy-save");
    button.disabled = true;
    const result = await pgfraud.api("PUT", "/policy", body);
    button.disabled = false;
    if (!result.ok) {
      say(policyMessage, "Not saved: " + pgfraud.errorText(result), false);
      return;
    }
    const p = result.data;
    reloadSaying("policy", `Policy ${p.policy_id} in force: review from ${p.review_threshold}, decline from ${p.decline_threshold}.`);
  });

  section.querySelectorAll("form.add-entry").forEach((form) => {
    const name = form.closest(".decision-list").dataset.listName;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { value: integer(form.elements.value.value), reason: form.elements.reason.value };
      const expires = form.elements.expires_at.value.trim();
      if (expires) body.expires_at = expires;
      const result = await pgfraud.api("POST", `/lists/${encodeURIComponent(name)}/entries`, body);
      if (!result.ok) {
        say(listsMessage, `Not added to ${name}: ` + pgfraud.errorText(result), false);
        return;
      }
      reloadSaying("lists", `${result.data.value} added to ${name} (entry ${result.data.entry_id}).`);
    });
  });

  section.addEventListener("click", async (event) => {
    const button = event.target.closest("button.remove-entry");
    if (!button) return;
    const name = button.closest(".decision-list").dataset.listName;
    const value = button.closest("tr").dataset.value;
    button.disabled = true;
    const result = await pgfraud.api("DELETE", `/lists/${encodeURIComponent(name)}/entries/${encodeURIComponent(value)}`);
    button.disabled = false;
    if (!result.ok) {
      say(listsMessage, `Not removed from ${name}: ` + pgfraud.errorText(result), false);
      return;
    }
    reloadSaying("lists", `${value} removed from ${name}.`);
  });

  const create = document.getElementById("create-list");
  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      list_name: create.elements.list_name.value.trim(),
      subject: create.elements.subject.value,
      kind: create.elements.kind.value,
      description: create.elements.description.value,
    };
    const result = await pgfraud.api("POST", "/lists", body);
    if (!result.ok) {
      say(listsMessage, "List not created: " + pgfraud.errorText(result), false);
      return;
    }
    reloadSaying("lists", `List ${result.data.list_name} created.`);
  });
})();

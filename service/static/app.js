// pgfraud's page: what every page shares. Plain JavaScript, no build step.
// - api(): fetch JSON from the service's own API; on 429 (heavy work at its
//   bound) waits Retry-After and tries again, up to 6 times; asks once for the API token
//   when a call answers 401, keeps it in sessionStorage (this tab only, never
//   in a URL), sends it as a bearer on every call, reads and writes.
// - sign-in: a page answered 401 (a token is configured and this browser has
//   no session) asks for the token (or takes the one this tab keeps), trades
//   it for the HttpOnly session cookie (POST /session) and loads the page
//   again; the cookie lets page loads and the live feed (EventSource sends no
//   headers) read. Writes always send the bearer.
// - the database banner: shown when /health (or any call) fails, hidden when
//   it answers again; a page rendered while the database was down reloads.
"use strict";

const pgfraud = (() => {
  const TOKEN_KEY = "pgfraud-api-token";
  const banner = document.getElementById("db-banner");
  const renderedDown = banner && !banner.hidden;

  function escapeHtml(value) {
    return String(value ?? "").replace(/[&<>"']/g, (c) => ({
      "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
    }[c]));
  }

  function showBanner(down) {
    if (banner) banner.hidden = !down;
  }

  function askToken() {
    const dialog = document.getElementById("token-dialog");
    const input = document.getElementById("token-input");
    return new Promise((resolve) => {
      input.value = "";
      dialog.addEventListener("close", function onClose() {
        dialog.removeEventListener("close", onClose);
        const token = dialog.returnValue === "ok" ? input.value.trim() : "";
        if (token) sessionStorage.setItem(TOKEN_KEY, token);
        resolve(token);
      });
      dialog.showModal();
      input.focus();
    });
  }

  // One call to the API: {ok, status, data}. data is the JSON answer (an
  // {error: {code, message, field}} object on failure). Never throws for an
  // HTTP error; a network failure or a 503 shows the banner.
  async function api(method, url, body, retried, busyTries = 0) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    let response;
    try {
      response = await fetch(url, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      showBanner(true);
      return { ok: false, status: 0, data: { error: { code: "unreachable", message: "the service is not answering" } } };
    }
    let data = null;
    try { data = await response.json(); } catch (err) { data = { error: { code: "bad_answer", message: "the service's answer was not JSON" } }; }
    showBanner(response.status === 503 && !(data && data.error && data.error.code === "time_limit_exceeded"));
    // Heavy work at its bound (429): wait as told (Retry-After), up to 6 tries.
    if (response.status === 429 && busyTries < 5) {
      const seconds = Number(response.headers.get("Retry-After")) || 5;
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      return api(method, url, body, retried, busyTries + 1);
    }
    if (response.status === 401 && !retried) {
      sessionStorage.removeItem(TOKEN_KEY);
      const given = await askToken();
      if (given) return api(method, url, body, true);
    }
    return { ok: response.ok, status: response.status, data };
  }

  function errorText(result) {
    const e = (result.data && result.data.error) || {};
    return (e.message || "failed") + (e.field ? " (" + e.field + ")" : "");
  }

  function fixed(value, places) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(places);
  }

  // The sign-in page: the kept token, or one asked for, for the session cookie.
  async function signIn() {
    const message = document.getElementById("signin-message");
    let token = sessionStorage.getItem(TOKEN_KEY);
    for (;;) {
      if (!token) token = await askToken();
      if (!token) {
        message.textContent = "No token given: the pages need one.";
        return;
      }
      let response;
      try {
        response = await fetch("/session", {
          method: "POST", headers: { Accept: "application/json", Authorization: "Bearer " + token },
        });
      } catch (err) {
        showBanner(true);
        message.textContent = "The service is not answering.";
        return;
      }
      if (response.ok) {
        sessionStorage.setItem(TOKEN_KEY, token);
        location.reload();
        return;
      }
      if (response.status !== 401) {
        showBanner(response.status === 503);
        message.textContent = "Signing in failed (HTTP " + response.status + ").";
        return;
      }
      sessionStorage.removeItem(TOKEN_KEY);
      message.textContent = "That token is not valid (unknown, or revoked); enter your API token.";
      token = null;
    }
  }
  if (document.body.dataset.page === "signin") {
    document.getElementById("signin-button").addEventListener("click", signIn);
    signIn();
  }

  // /health every PAGE_HEALTH_INTERVAL_S (10 s), every 2 s at most while down.
  const every = Number(document.body.dataset.healthIntervalMs) || 10000;
  async function checkHealth() {
    try {
      const response = await fetch("/health", { headers: { Accept: "application/json" } });
      if (response.ok && renderedDown) { location.reload(); return; }
      showBanner(!response.ok);
    } catch (err) {
      showBanner(true);
    }
    setTimeout(checkHealth, banner && !banner.hidden ? Math.min(every, 2000) : every);
  }
  setTimeout(checkHealth, renderedDown ? Math.min(every, 2000) : every);

  return { api, escapeHtml, errorText, fixed, showBanner };
})();

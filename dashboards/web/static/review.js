// The review queue's keyboard: j/k move, a/w/d/r/s label the focused pair, o opens it.
// Every action is also a plain form button; this only saves the round trip of a page load.
(function () {
  "use strict";
  const queue = document.getElementById("queue");
  if (!queue) return;
  const csrf = document.querySelector('meta[name="csrftoken"]').content;
  const reviewer = document.getElementById("reviewer");
  reviewer.value = localStorage.getItem("shadowjudge.reviewer") || reviewer.value;
  reviewer.addEventListener("change", () => localStorage.setItem("shadowjudge.reviewer", reviewer.value));
  const keys = {};
  const items = () => Array.from(queue.querySelectorAll("article.item:not(.done)"));
  let current = null;

  function focus(item) {
    if (current) current.classList.remove("current");
    current = item || null;
    if (current) {
      current.classList.add("current");
      current.focus({ preventScroll: true });
      current.scrollIntoView({ block: "nearest" });
    }
  }

  function move(step) {
    const all = items();
    if (!all.length) return focus(null);
    const at = all.indexOf(current);
    focus(all[Math.min(Math.max(at + step, 0), all.length - 1)] || all[0]);
  }

  // Refreshes run one after another, so an older answer never overwrites a newer one.
  let refreshing = Promise.resolve();
  const pageWindow = document.querySelector('form.pick input[name="window"]').value;

  function refreshAgreement(form) {
    refreshing = refreshing.then(() => fetchAgreement(form)).catch(() => {});
  }

  async function fetchAgreement(form) {
    const migration = form.elements.migration.value;
    const query = new URLSearchParams({ window: pageWindow, judge_version: form.elements.judge_version.value });
    const answer = await fetch(`/api/v1/migrations/${encodeURIComponent(migration)}/analysis?${query}`, { headers: { Accept: "application/json" } });
    if (!answer.ok) return;
    const analysis = await answer.json();
    for (const arm of analysis.arms) {
      const figure = document.querySelector(`[data-figure="agreement-${CSS.escape(arm.arm)}"]`);
      if (figure && arm.agreement) figure.textContent = `${arm.agreement.agree}/${arm.agreement.n}`;
    }
  }

  async function label(item, action) {
    // One label per pair: keys pressed while it is saving go to the next pair.
    if (item.classList.contains("saving") || item.classList.contains("done")) return;
    const form = item.querySelector("form.actions");
    const data = new FormData(form);
    data.set("action", action);
    data.set("reviewer", reviewer.value || "reviewer");
    item.classList.add("saving");
    const all = items();
    focus(all[all.indexOf(item) + 1] || null);
    // `form.action` would be the buttons named "action", not the form's address.
    const answer = await fetch(form.getAttribute("action"), {
      method: "POST",
      body: new URLSearchParams(data),
      headers: { Accept: "application/json", "x-csrftoken": csrf },
      credentials: "same-origin",
    });
    item.classList.remove("saving");
    if (!answer.ok) {
      focus(item);
      const problem = await answer.json().catch(() => ({ error: answer.statusText }));
      item.querySelector(".reason").insertAdjacentHTML("afterend", '<p class="problem" role="alert"></p>');
      item.querySelector(".problem").textContent = problem.error || String(answer.status);
      return;
    }
    const saved = await answer.json();
    item.classList.add("done");
    item.dataset.label = saved.label;
    if (!current) focus(items()[0]);
    refreshAgreement(form);
  }

  queue.querySelectorAll("button[data-key]").forEach((button) => { keys[button.dataset.key] = button.value; });
  queue.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-key]");
    if (!button || button.disabled) return;
    event.preventDefault();
    label(button.closest("article.item"), button.value);
  });
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.matches("input, select, textarea")) return;
    if (event.key === "j") return move(1);
    if (event.key === "k") return move(-1);
    if (!current) return;
    if (event.key === "o") { location.href = current.querySelector("a.open").href; return; }
    const action = keys[event.key];
    const button = current.querySelector(`button[data-key="${event.key}"]`);
    if (action && button && !button.disabled) { event.preventDefault(); label(current, action); }
  });
  focus(items()[0]);
})();

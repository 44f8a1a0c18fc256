// Store-staff page: look a customer up, show the next best offers, record what they said.
// Plain browser JavaScript, no build step. Every datum comes from the JSON APIs; the staff key
// (unless the server runs in development mode) is kept in sessionStorage for this tab only.
"use strict";

(() => {
  const config = JSON.parse(document.getElementById("staff-config").textContent);
  const KEY_ITEM = "nba.staffKey";
  const STORE_ITEM = "nba.storeId";
  const READY_POLL_MS = 5000;
  const RECORDED_PAUSE_MS = 700;  // long enough to see "Recorded" before the offers refresh

  const $ = (id) => document.getElementById(id);
  const app = $("app");
  // accepted: "customer_id offer_id" taken this visit (a new decision may rank them again)
  const state = { customer: null, decision: null, ref: "", session: null, readyTimer: null,
                  accepted: new Set() };

  const ACTION_LABELS = { offer: "Offer now", waitlist: "Waiting list", preorder: "Pre-order" };
  const EVENT_LABELS = { accepted: "Accepted", declined: "Declined", shown: "Not now" };
  const SUPPRESSION_TEXT = {
    not_contactable: "customer has withdrawn consent to contact",
    contact_cap: "contact limit reached",
    not_eligible: "not eligible",
    out_of_stock: "out of stock",
    below_value_threshold: "kept for higher-value customers",
    no_incremental_value: "would not change what they buy",
    no_model: "no data on this offer yet",
    outranked: "other offers are better",
  };

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // ------------------------------------------------------------ small helpers

  function staffKey() {
    return config.dev_mode ? null : sessionStorage.getItem(KEY_ITEM);
  }

  function setState(name) {
    app.dataset.state = name;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function humanize(offerId) {
    const words = offerId.replace(/_/g, " ");
    return words.charAt(0).toUpperCase() + words.slice(1);
  }

  function capitalize(text) {
    return text ? text.charAt(0).toUpperCase() + text.slice(1) : text;
  }

  function currentStore() {
    const value = $("store").value.trim();
    return value || null;
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    const key = staffKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      throw new ApiError(0, "network", "The offer service cannot be reached.");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (!response.ok) {
      const problem = (data && data.error) || {};
      throw new ApiError(response.status, problem.code || `http_${response.status}`,
                         problem.message || response.statusText);
    }
    return data;
  }

  // ------------------------------------------------------------ page regions

  function showBanner(text) {
    $("banner-text").textContent = text;
    $("banner").hidden = false;
  }

  function hideBanner() {
    $("banner").hidden = true;
  }

  function showMessage(kind, title, text, details) {
    const box = $("message");
    box.className = `message ${kind}`;
    $("message-title").textContent = title;
    $("message-text").textContent = text;
    const list = $("message-list");
    list.replaceChildren();
    $("message-details").hidden = !details || details.length === 0;
    (details || []).forEach((line) => list.appendChild(el("li", null, line)));
    box.hidden = false;
  }

  function clearResults() {
    $("message").hidden = true;
    const offers = $("offers");
    offers.replaceChildren();
    delete offers.dataset.decisionId;
  }

  function setBusy(busy) {
    $("lookup-button").disabled = busy;
    $("walk-in").disabled = busy;
    $("lookup-button").textContent = busy ? "Looking up…" : "Look up";
  }

  function showKeyForm(problem) {
    $("key-form").hidden = false;
    $("lookup-form").hidden = true;
    $("key-error").hidden = !problem;
    $("key-error").textContent = problem || "";
    $("key-input").value = "";
    $("key-input").focus();
  }

  function showLookup() {
    $("key-form").hidden = true;
    $("lookup-form").hidden = false;
    $("change-key").hidden = config.dev_mode;
    $("customer-ref").focus();
  }

  function renderCustomer(customer) {
    $("c-id").textContent = customer.customer_id;
    const hasCard = Boolean(customer.loyalty_card);
    document.querySelectorAll(".card-only").forEach((node) => { node.hidden = !hasCard; });
    $("c-card").textContent = customer.loyalty_card || "";
    const tier = $("c-tier");
    tier.textContent = capitalize(customer.loyalty_tier) || "No tier";
    tier.dataset.tier = customer.loyalty_tier || "none";
    $("c-value").textContent = `${capitalize(customer.value_band)} value`;
    $("c-size").textContent = customer.preferred_size || "—";
    $("c-color").textContent = capitalize(customer.preferred_color) || "—";
    $("c-contact").textContent = customer.contactable ? "Offers OK" : "No offers (no consent)";
    $("customer").hidden = false;
  }

  // ------------------------------------------------------------ errors

  function handleError(error) {
    if (!(error instanceof ApiError)) throw error;
    if (error.status === 401 || error.status === 403) {
      sessionStorage.removeItem(KEY_ITEM);
      setState("auth");
      showKeyForm(error.status === 401
        ? "That key was not accepted. Enter a valid staff key."
        : "That key does not have the staff role. Ask a manager for a staff key.");
      return;
    }
    if (error.code === "unknown_customer") {
      setState("unknown");
      $("customer").hidden = true;
      const what = config.card_lookup ? "customer id or card number" : "customer id";
      showMessage("warn", "Customer not found",
                  `No customer matches “${state.ref}”. Check the ${what} and try again.`);
      return;
    }
    if (error.code === "model_not_ready") {
      setState("not-ready");
      notReady();
      showMessage("warn", "Service is starting",
                  "The offer service is starting and not ready yet. Try again in a minute.");
      return;
    }
    setState("error");
    const title = error.status === 0 ? "No connection" : "Something went wrong";
    const hint = error.status === 503 ? " The stock system is not answering right now." : "";
    showMessage("error", title, `${error.message}${hint} Try again in a moment.`);
  }

  // ------------------------------------------------------------ readiness

  function notReady() {
    showBanner("The offer service is starting / not ready yet. Lookups will work once it is "
               + "ready; this page checks again every few seconds.");
    if (state.readyTimer === null) {
      state.readyTimer = setInterval(checkReady, READY_POLL_MS);
    }
  }

  async function checkReady() {
    let ready = false;
    try {
      const response = await fetch("/readyz", { headers: { Accept: "application/json" } });
      ready = response.ok;
    } catch (error) {
      ready = false;
    }
    if (ready) {
      hideBanner();
      if (state.readyTimer !== null) clearInterval(state.readyTimer);
      state.readyTimer = null;
      if (app.dataset.state === "not-ready") {
        setState("idle");
        $("message").hidden = true;
      }
    } else {
      // only an idle page turns "not ready": a lookup's own answer stays on screen
      if (app.dataset.state === "idle") setState("not-ready");
      notReady();
    }
    return ready;
  }

  // ------------------------------------------------------------ decisions and offers

  function renderWalkIn() {
    renderCustomer({ customer_id: "Walk-in, no account", loyalty_card: null,
                     loyalty_tier: null, value_band: "new customer", preferred_size: null,
                     preferred_color: null, contactable: true });
    $("c-value").textContent = "New customer";
  }

  // A customer without an account: decided from the offers for new customers, under a
  // session id of this visit (no profile is read or written).
  async function walkIn() {
    showRegister(true);
    state.ref = "";
    state.session = `walkin-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    state.customer = { customer_id: null, walk_in: true, preferred_size: null,
                       preferred_color: null, loyalty_tier: null };
    state.decision = null;
    clearResults();
    setState("loading");
    setBusy(true);
    renderWalkIn();
    try {
      await decide();
    } catch (error) {
      handleError(error);
    } finally {
      setBusy(false);
    }
  }

  function showRegister(visible) {
    $("register-form").hidden = !visible;
    $("register-error").hidden = true;
    $("card-input").value = "";
  }

  // A walk-in signs up: their new card creates their profile (a sign-up event on the
  // server), then the page looks them up by that card, as a known customer.
  async function registerCard(card) {
    $("register-button").disabled = true;
    try {
      const registered = await api("POST", "/v1/staff/register", { card });
      showRegister(false);
      await lookup(registered.customer_id);
    } catch (error) {
      if (!(error instanceof ApiError) || error.status === 401 || error.status === 403) {
        handleError(error);
      } else {
        $("register-error").textContent = error.message;
        $("register-error").hidden = false;
      }
    } finally {
      $("register-button").disabled = false;
    }
  }

  async function lookup(ref) {
    showRegister(false);
    state.ref = ref;
    state.session = null;
    state.customer = null;
    state.decision = null;
    clearResults();
    setState("loading");
    setBusy(true);
    try {
      const customer = await api("GET", `/v1/customers/${encodeURIComponent(ref)}`);
      state.customer = customer;
      renderCustomer(customer);
      await decide();
    } catch (error) {
      handleError(error);
    } finally {
      setBusy(false);
    }
  }

  async function decide() {
    const customer = state.customer;
    const storeId = currentStore();
    const who = customer.walk_in ? { session_id: state.session }
      : { customer_id: customer.customer_id };
    const context = storeId ? { store_id: storeId } : {};
    if (customer.walk_in) context.device = "tablet";
    const decision = await api("POST", "/v1/decisions", {
      ...who, channel: "store", limit: config.limit, context,
    });
    if (decision.holdout || decision.offers.length === 0) {
      state.decision = decision;
      clearResults();
      $("offers").dataset.decisionId = decision.decision_id;
    }
    if (decision.holdout) {
      setState("holdout");
      showMessage("info", "No offers for this customer: holdout group",
                  "This customer is in the comparison group that gets no offers, so we can "
                  + "measure what offers add. Serve them as usual; nothing to record.");
      return;
    }
    if (decision.offers.length === 0) {
      setState("no-offers");
      showNoOffers(decision);
      return;
    }
    const explained = await api("POST", "/v1/staff/explain", {
      customer_id: decision.customer_id, store_id: storeId, offers: decision.offers,
    });
    const skus = [...new Set(explained.offers.map((o) => o.sku).filter(Boolean))];
    const stocks = await Promise.all(skus.map((sku) => {
      const query = new URLSearchParams({ sku });
      if (storeId) query.set("store_id", storeId);
      return api("GET", `/v1/stock?${query}`);
    }));
    const stockBySku = Object.fromEntries(stocks.map((s) => [s.sku, s]));
    // the old cards stay until the new ones are ready: no empty flash while refreshing
    state.decision = decision;
    clearResults();
    renderOffers(decision, explained.offers, stockBySku);
    setState("offers");
  }

  function showNoOffers(decision) {
    const reasons = decision.suppressed.map((s) => s.reason);
    const all = (code) => reasons.length > 0 && reasons.every((r) => r === code);
    let text = "Nothing we can offer is expected to make a difference for this customer "
      + "today. Serve them as usual.";
    if (all("not_contactable")) {
      text = "This customer has withdrawn consent to be contacted with offers. Serve them as "
        + "usual, without offers.";
    } else if (reasons.includes("contact_cap")) {
      text = "This customer has already had the most offers allowed for now. Serve them as "
        + "usual.";
    }
    // one line per reason, naming its offers; consent alone needs no list
    const groups = new Map();
    decision.suppressed.forEach((s) => {
      if (!groups.has(s.reason)) groups.set(s.reason, []);
      groups.get(s.reason).push(humanize(s.offer_id));
    });
    const details = all("not_contactable") ? [] : [...groups].map(([reason, names]) =>
      `${capitalize(SUPPRESSION_TEXT[reason] || reason)}: ${names.join(", ")}`);
    showMessage("info", "No offer worth making", text, details);
  }

  function mine(variant, customer) {
    const sizeFits = variant.size === null || variant.size === customer.preferred_size;
    const colorFits = variant.color === null || variant.color === customer.preferred_color;
    return sizeFits && colorFits;
  }

  function renderStock(card, stock, customer) {
    if (!stock || stock.variants.length === 0) return;
    const box = card.querySelector(".stock");
    const theirs = stock.variants.filter((v) => mine(v, customer));
    const sum = (rows, key) => rows.reduce((total, v) => total + (v[key] || 0), 0);
    const here = stock.store_id ? `${sum(theirs, "store")} in this store · ` : "";
    const variantWords = [customer.preferred_size && stock.variants.some((v) => v.size)
      ? `size ${customer.preferred_size}` : null,
    customer.preferred_color && stock.variants.some((v) => v.color)
      ? customer.preferred_color : null].filter(Boolean).join(" ");
    const label = variantWords ? `Their ${variantWords}` : "Stock";
    box.querySelector(".stock-summary").textContent =
      `${label}: ${here}${sum(theirs, "online")} online`;
    const count = stock.variants.length;
    box.querySelector(".stock-toggle").textContent =
      `Stock of all sizes and colours (${count} ${count === 1 ? "line" : "lines"})`;
    const body = box.querySelector("tbody");
    stock.variants.forEach((v) => {
      const row = el("tr", mine(v, customer) ? "mine" : null);
      row.appendChild(el("td", null, v.size || "any"));
      row.appendChild(el("td", null, capitalize(v.color) || "any"));
      row.appendChild(el("td", "num", stock.store_id ? String(v.store) : "—"));
      row.appendChild(el("td", "num", String(v.online)));
      body.appendChild(row);
    });
    box.hidden = false;
  }

  function renderOffers(decision, explained, stockBySku) {
    const container = $("offers");
    container.replaceChildren();
    container.dataset.decisionId = decision.decision_id;
    const template = $("offer-template");
    decision.offers.forEach((offer, i) => {
      const info = explained[i];
      const card = template.content.firstElementChild.cloneNode(true);
      card.dataset.offerId = offer.offer_id;
      card.dataset.action = offer.action;
      card.querySelector(".rank").textContent = String(offer.rank);
      card.querySelector(".name").textContent = info.name;
      const badge = card.querySelector(".badge");
      badge.textContent = ACTION_LABELS[offer.action] || offer.action;
      badge.dataset.action = offer.action;
      card.querySelector(".sentence").textContent = info.sentence;
      const meta = [`${(offer.conversion_probability * 100).toFixed(0)}% likely to buy`,
        `+${offer.expected_incremental_value.toFixed(2)} expected profit`];
      if (offer.reservation) {
        const until = new Date(offer.reservation.expires_at);
        const time = until.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
        meta.push(`1 unit held for them until ${time}`);
      }
      if (info.sku) meta.push(info.sku);
      card.querySelector(".meta").textContent = meta.join(" · ");
      renderStock(card, stockBySku[info.sku], state.customer);
      if (state.accepted.has(`${decision.customer_id} ${offer.offer_id}`)) {
        card.dataset.recorded = "accepted";
        card.querySelector(".card-status").textContent = "Accepted earlier this visit";
        card.querySelectorAll(".actions button").forEach((button) => {
          button.disabled = true;
        });
      }
      card.querySelectorAll(".actions button").forEach((button) => {
        button.addEventListener("click", () => record(card, decision.decision_id, offer,
                                                      button.dataset.event, info.name));
      });
      container.appendChild(card);
    });
  }

  function addRecorded(name, event, repeated) {
    const list = $("recorded-list");
    const item = el("li", `recorded-${event}`);
    item.appendChild(el("strong", null, EVENT_LABELS[event]));
    item.appendChild(document.createTextNode(
      ` ${name} · ${state.customer.customer_id} · ${repeated ? "already recorded" : "recorded"}`));
    list.prepend(item);
    $("recorded").hidden = false;
  }

  async function record(card, decisionId, offer, event, name) {
    const buttons = card.querySelectorAll(".actions button");
    buttons.forEach((button) => { button.disabled = true; });
    const status = card.querySelector(".card-status");
    status.textContent = "Recording…";
    try {
      const result = await api("POST", "/v1/outcomes", {
        decision_id: decisionId, offer_id: offer.offer_id, event,
      });
      card.dataset.recorded = event;
      if (event === "accepted") {
        state.accepted.add(`${state.customer.customer_id} ${offer.offer_id}`);
      }
      status.textContent = `Recorded: ${EVENT_LABELS[event].toLowerCase()}`;
      addRecorded(name, event, !result.recorded);
      if (event === "accepted") {
        // what the customer took changes what is worth offering next: decide again
        await new Promise((resolve) => { setTimeout(resolve, RECORDED_PAUSE_MS); });
        await decide();
      } else {
        card.remove();
        if ($("offers").children.length === 0) {
          setState("done");
          showMessage("info", "All offers answered", "Look up the next customer when ready.");
        }
      }
    } catch (error) {
      buttons.forEach((button) => { button.disabled = false; });
      status.textContent = "";
      handleError(error);
    }
  }

  // ------------------------------------------------------------ wiring

  function init() {
    const store = $("store");
    const params = new URLSearchParams(window.location.search);
    const remembered = localStorage.getItem(STORE_ITEM);
    if (!params.get("store_id") && remembered) {
      const known = store.tagName !== "SELECT"
        || [...store.options].some((option) => option.value === remembered);
      if (known) store.value = remembered;
    }
    store.addEventListener("change", () => {
      localStorage.setItem(STORE_ITEM, store.value);
      if (state.customer && state.decision) {
        decide().catch(handleError);
      }
    });

    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key-input").value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY_ITEM, key);
      showLookup();
      if (state.ref) lookup(state.ref);
    });
    $("change-key").addEventListener("click", () => {
      sessionStorage.removeItem(KEY_ITEM);
      showKeyForm(null);
    });
    $("lookup-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const ref = $("customer-ref").value.trim();
      if (ref) lookup(ref);
    });
    $("walk-in").addEventListener("click", () => { walkIn(); });
    $("register-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const card = $("card-input").value.trim();
      if (card) registerCard(card);
    });
    $("banner-retry").addEventListener("click", () => { checkReady(); });

    if (staffKey() || config.dev_mode) {
      showLookup();
    } else {
      setState("auth");
      showKeyForm(null);
    }
    checkReady().finally(() => { document.body.dataset.loaded = "true"; });
  }

  init();
})();

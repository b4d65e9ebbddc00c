/*
 * driftwatch ops dashboard.
 *
 * A dependency-free single-page app (ES2020). Routes (hash based):
 *   #/                    overview: KPIs, charts, reconciliation report,
 *                         stream status, ops alerts and the paged mismatch list
 *   #/order/<order_id>    one order: systems side by side, open mismatches,
 *                         gaps and the event timeline
 *   #/mismatch/<alert_id> one mismatch: its owner (take it, hand it over),
 *                         its runbook, a note, the resolution and the
 *                         audit trail
 *
 * Every view refreshes every POLL_MS. Refreshes update the DOM in place
 * (keyed by alert_id), so filters, the page, the scroll position and resolve
 * forms being typed into survive them.
 *
 * Safety: every piece of data is inserted with textContent/setAttribute,
 * never with innerHTML.
 *
 * The operator's name, asked once (the first time an action needs it) and
 * kept in sessionStorage, is the "by" of what is done here and the owner
 * "Take it" assigns.
 */
'use strict';

(() => {
  // ---------------------------------------------------------------- config

  const POLL_MS = 5000;
  const PAGE_SIZE = 50;
  // How long a mismatch resolved here stays on screen (showing "resolved")
  // before the refresh that drops it from the open list.
  const RESOLVED_HOLD_MS = 1500;
  const SEVERITIES = ['critical', 'high', 'medium', 'low'];
  // CONTRACT.md section 6; used until /v1/stats tells us the real list.
  const DEFAULT_PATTERNS = [
    'order_not_acknowledged', 'shipment_not_reflected', 'return_not_reflected',
    'cancel_not_propagated', 'payment_without_order', 'status_not_propagated',
    'acked_not_applied', 'unmapped_status', 'illegal_transition',
    'manual_override', 'clock_skew', 'missing_event',
  ];
  // Filter key (query parameter of GET /v1/mismatches) -> select id.
  const FILTERS = [
    ['severity', 'filter-severity'],
    ['pattern', 'filter-pattern'],
    ['system', 'filter-system'],
    ['state', 'filter-state'],
    ['owner', 'filter-owner'],
    ['min_age', 'filter-age'],
  ];
  const DEFAULT_FILTERS = { severity: '', pattern: '', system: '', state: 'open', owner: '', min_age: '' };

  // ----------------------------------------------------------- DOM helpers

  /** Creates an element. props: class, text, dataset, on<event>, attributes. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    applyProps(el, props);
    appendChildren(el, children);
    return el;
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';

  /** Creates an SVG element with attributes. */
  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) el.setAttribute(k, String(v));
    }
    appendChildren(el, children);
    return el;
  }

  function applyProps(el, props) {
    if (!props) return;
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = String(v);
      else if (k === 'dataset') {
        for (const [dk, dv] of Object.entries(v)) {
          if (dv !== undefined && dv !== null) el.dataset[dk] = String(dv);
        }
      } else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
  }

  /** Appends nodes and strings (as text nodes); skips null/undefined/false. */
  function appendChildren(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  let uidCounter = 0;
  function uid(prefix) {
    uidCounter += 1;
    return `${prefix}-${uidCounter}`;
  }

  function cloneTemplate(id) {
    return document.getElementById(id).content.firstElementChild.cloneNode(true);
  }

  /** Looks up an element by id inside a (possibly detached) root. */
  function byId(root, id) {
    return root.querySelector(`#${id}`);
  }

  /**
   * Makes the children of parent after `after` exactly `nodes`, in order,
   * moving only the nodes that are out of place (a focused textarea that
   * stays in place keeps its focus and caret).
   */
  function syncChildren(parent, nodes, after = null) {
    const want = new Set(nodes);
    let child = after ? after.nextSibling : parent.firstChild;
    while (child) {
      const next = child.nextSibling;
      if (!want.has(child)) parent.removeChild(child);
      child = next;
    }
    let cursor = after ? after.nextSibling : parent.firstChild;
    for (const node of nodes) {
      if (node === cursor) cursor = cursor.nextSibling;
      else parent.insertBefore(node, cursor);
    }
  }

  // ------------------------------------------------------------ formatting

  function parseTime(iso) {
    if (!iso) return null;
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? null : d;
  }

  const dateTimeFmt = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
  const hourFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  const clockFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });

  /** A <time> in the browser's local time, the raw ISO string as tooltip. */
  function timeEl(iso) {
    const d = parseTime(iso);
    if (!d) return h('span', { class: 'muted', text: iso ? String(iso) : '—' });
    return h('time', { datetime: iso, title: iso, text: dateTimeFmt.format(d) });
  }

  /** Seconds -> "45s", "5m 3s", "2h 5m", "3d 4h". */
  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return '—';
    let s = Math.round(Math.abs(Number(seconds)));
    const sign = Number(seconds) < 0 ? '−' : '';
    const d = Math.floor(s / 86400); s -= d * 86400;
    const hr = Math.floor(s / 3600); s -= hr * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d > 0) return `${sign}${d}d ${hr}h`;
    if (hr > 0) return `${sign}${hr}h ${m}m`;
    if (m > 0) return `${sign}${m}m ${s}s`;
    return `${sign}${s}s`;
  }

  /** Milliseconds of lag -> "120 ms", "3.4 s", "5m 2s". */
  function fmtLag(ms) {
    if (ms === null || ms === undefined) return '—';
    const abs = Math.abs(ms);
    const sign = ms < 0 ? '−' : '';
    if (abs < 1000) return `${sign}${abs} ms`;
    if (abs < 60000) return `${sign}${(abs / 1000).toFixed(1)} s`;
    return fmtDuration(ms / 1000);
  }

  /** Age of an ISO time relative to now, e.g. "2h 5m". */
  function fmtAge(iso) {
    const d = parseTime(iso);
    return d ? fmtDuration((Date.now() - d.getTime()) / 1000) : '—';
  }

  function fmtInt(n) {
    return (n === null || n === undefined) ? '—' : Number(n).toLocaleString();
  }

  function fmtPct(x) {
    return (x === null || x === undefined) ? '—' : `${(Number(x) * 100).toFixed(1)}%`;
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = Number(n);
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
  }

  /** Amounts are decimal strings in the API: shown as they are. */
  function fmtMoney(amount, currency) {
    if (amount === undefined || amount === null || amount === '') return '—';
    return currency ? `${amount} ${currency}` : String(amount);
  }

  // ------------------------------------------------------ small components

  function sevChip(sev) {
    const s = sev || 'unknown';
    return h('span', { class: `chip sev sev-${s}`, text: s });
  }

  function stateChip(st) {
    const s = st || 'unknown';
    return h('span', { class: `chip state state-${s}`, text: s });
  }

  function flagChip(text, cls, title) {
    return h('span', { class: `chip flag ${cls || ''}`.trim(), text, title });
  }

  function orderHref(orderId) {
    return `#/order/${encodeURIComponent(orderId)}`;
  }

  function mismatchHref(alertId) {
    return `#/mismatch/${encodeURIComponent(alertId)}`;
  }

  /** The owner of a mismatch, or a muted "unassigned". */
  function ownerEl(owner) {
    return owner
      ? h('span', { class: 'owner-name', text: owner })
      : h('span', { class: 'owner-name unassigned muted', text: 'unassigned' });
  }

  function orderLink(orderId) {
    return h('a', { class: 'order-link', href: orderHref(orderId), text: orderId });
  }

  /** A button that scrolls to and flashes an event of the order timeline. */
  function seqButton(seq, label) {
    return h('button', {
      type: 'button',
      class: 'seq-link',
      title: `Show event #${seq} in the timeline`,
      text: label || `#${seq}`,
      onclick: (ev) => { ev.stopPropagation(); focusTimelineSeq(seq); },
    });
  }

  function emptyText(text) {
    return h('p', { class: 'empty', text });
  }

  /** A section-level load failure (not an API answer to a user action). */
  function loadErrorEl(err) {
    return h('p', { class: 'load-error', role: 'status' }, `Could not load: ${errorText(err)}`);
  }

  function errorText(err) {
    if (!err) return '';
    return err.code ? `${err.message} (${err.code})` : String(err.message || err);
  }

  /** A definition list from [label, value] pairs (value: node or text). */
  function factList(pairs, cls) {
    const dl = h('dl', { class: cls || 'facts' });
    for (const [label, value] of pairs) {
      if (value === undefined || value === null || value === '') continue;
      dl.append(h('dt', { text: label }), h('dd', null, value));
    }
    return dl;
  }

  // ------------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, message, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  /**
   * Calls the driftwatch HTTP API. Success: the parsed JSON body. Failure:
   * an ApiError carrying the API's {"error", "code"} (status 0 and code
   * "network" when the server could not be reached). A 401 (driftwatch
   * configured with tokens) asks for a token and sends the call again.
   */
  async function api(method, path, body) {
    for (;;) {
      const init = { method, headers: { Accept: 'application/json' }, cache: 'no-store' };
      if (body !== undefined) {
        init.headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
      const token = auth.token;
      if (token) init.headers.Authorization = `Bearer ${token}`;
      let res;
      try {
        res = await fetch(path, init);
      } catch (e) {
        throw new ApiError(0, `cannot reach driftwatch (${e.message})`, 'network');
      }
      if (res.status === 401) {
        noteConnection(true);
        if (token && auth.token === token) setToken(''); // refused: forget it
        await signIn(Boolean(token));
        continue;
      }
      return readReply(res);
    }
  }

  async function readReply(res) {
    let data = null;
    const text = await res.text();
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = null; }
    }
    noteConnection(true); // the server answered, even if with an error
    if (!res.ok) {
      const msg = (data && data.error) || `HTTP ${res.status} ${res.statusText}`.trim();
      throw new ApiError(res.status, msg, (data && data.code) || '');
    }
    return data;
  }

  // --------------------------------------------------------------- sign-in
  //
  // With http.tokens configured, every API call needs a bearer token. The
  // first 401 opens the sign-in dialog; the token entered is kept in
  // sessionStorage (this tab only, gone when it closes) and sent on every
  // call. Calls waiting meanwhile all go again once it is entered.

  const TOKEN_KEY = 'driftwatch.token';
  const auth = { token: readStoredToken(), waiting: null };

  function readStoredToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (_) { return ''; }
  }

  function setToken(token) {
    auth.token = token;
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) { /* storage off: the token lives as long as the page */ }
    document.getElementById('sign-out').hidden = !token;
  }

  /** Shows the sign-in dialog (once, however many calls wait for it). */
  function signIn(refused) {
    if (auth.waiting) return auth.waiting;
    auth.waiting = new Promise((resolve) => {
      const dialog = document.getElementById('signin');
      const form = document.getElementById('signin-form');
      const input = document.getElementById('signin-token');
      document.getElementById('signin-reason').textContent = refused
        ? 'driftwatch refused that token. Enter a valid one.'
        : 'This driftwatch asks for an access token.';
      const onSubmit = (ev) => {
        ev.preventDefault();
        const token = input.value.trim();
        if (!token) { input.focus(); return; }
        form.removeEventListener('submit', onSubmit);
        input.value = '';
        setToken(token);
        dialog.close();
        auth.waiting = null;
        resolve();
      };
      form.addEventListener('submit', onSubmit);
      if (!dialog.open) dialog.showModal();
      input.focus();
    });
    return auth.waiting;
  }

  function wireSignIn() {
    // Escape would close the dialog with calls still waiting on it.
    document.getElementById('signin').addEventListener('cancel', (ev) => ev.preventDefault());
    document.getElementById('sign-out').addEventListener('click', () => {
      setToken('');
      location.reload();
    });
    document.getElementById('sign-out').hidden = !auth.token;
  }

  // -------------------------------------------------------- operator name
  //
  // Asked once, the first time an action needs it, and kept in
  // sessionStorage (this tab only). The header's button changes it.

  const OPERATOR_KEY = 'driftwatch.operator';
  const operator = { name: readStoredOperator(), waiting: null };

  function readStoredOperator() {
    try { return sessionStorage.getItem(OPERATOR_KEY) || ''; } catch (_) { return ''; }
  }

  function setOperator(name) {
    operator.name = name;
    try {
      if (name) sessionStorage.setItem(OPERATOR_KEY, name);
      else sessionStorage.removeItem(OPERATOR_KEY);
    } catch (_) { /* storage off: the name lives as long as the page */ }
    renderOperator();
  }

  function renderOperator() {
    const btn = document.getElementById('operator');
    btn.textContent = operator.name ? `You: ${operator.name}` : 'Set your name';
    btn.classList.toggle('is-set', Boolean(operator.name));
  }

  /**
   * The operator's name: the stored one, or asked for now. Resolves to ''
   * when the dialog is cancelled.
   */
  function operatorName(reason) {
    if (operator.name && !reason) return Promise.resolve(operator.name);
    if (operator.waiting) return operator.waiting;
    operator.waiting = new Promise((resolve) => {
      const dialog = document.getElementById('operator-dialog');
      const form = document.getElementById('operator-form');
      const input = document.getElementById('operator-name');
      const cancel = document.getElementById('operator-cancel');
      document.getElementById('operator-reason').textContent = reason
        || 'Your name goes into the audit trail of what you do here, and "Take it" assigns mismatches to it.';
      input.value = operator.name;
      const done = (name) => {
        form.removeEventListener('submit', onSubmit);
        cancel.removeEventListener('click', onCancel);
        dialog.removeEventListener('cancel', onCancel);
        if (dialog.open) dialog.close();
        operator.waiting = null;
        resolve(name);
      };
      const onSubmit = (ev) => {
        ev.preventDefault();
        const name = input.value.trim();
        if (!name) { input.focus(); return; }
        setOperator(name);
        done(name);
      };
      const onCancel = (ev) => { ev.preventDefault(); done(''); };
      form.addEventListener('submit', onSubmit);
      cancel.addEventListener('click', onCancel);
      dialog.addEventListener('cancel', onCancel);
      if (!dialog.open) dialog.showModal();
      input.focus();
      input.select();
    });
    return operator.waiting;
  }

  function wireOperator() {
    renderOperator();
    document.getElementById('operator').addEventListener('click', async () => {
      await operatorName('Change the name the audit trail gives what you do here.');
      if (state.overview && state.filters.owner === 'mine') loadList();
    });
  }

  /** GET /v1/orders/{order_id}[?as_of=RFC3339] */
  function orderPath(orderId) {
    return `/v1/orders/${encodeURIComponent(orderId)}`;
  }

  // ------------------------------------------------------------ app state

  const state = {
    route: null,
    filters: { ...DEFAULT_FILTERS },
    offset: 0,
    listSeq: 0,          // id of the latest list request; older answers are dropped
    overview: null,      // the overview view (built once)
    order: null,         // the current order view (rebuilt per order)
    mismatch: null,      // the current mismatch view (rebuilt per mismatch)
    overviewScroll: 0,
    lastResolved: null,  // {alertId, orderId} resolved from this browser
    replayMissing: false, // /replay route absent: use /timeline
    stats: null,
    report: null,
  };

  // ------------------------------------------------------- live indicator

  function noteConnection(ok, err) {
    const banner = document.getElementById('conn-banner');
    const dot = document.getElementById('live-dot');
    if (ok) {
      banner.hidden = true;
      banner.textContent = '';
      dot.classList.remove('down');
    } else {
      banner.hidden = false;
      banner.textContent = `Connection problem: ${errorText(err)}. Retrying every ${POLL_MS / 1000}s.`;
      dot.classList.add('down');
    }
  }

  function noteUpdated() {
    const el = document.getElementById('last-updated');
    const now = new Date();
    el.textContent = `Live · updated ${clockFmt.format(now)}`;
    el.title = now.toISOString();
  }

  /** Network failures light the banner; API errors are shown where they belong. */
  function checkNetwork(err) {
    if (err && err.code === 'network') noteConnection(false, err);
  }

  // --------------------------------------------------------------- polling

  const poll = { timer: 0, running: false, again: false };

  function scheduleRefresh(delay) {
    clearTimeout(poll.timer);
    poll.timer = setTimeout(refreshNow, delay);
  }

  /** Refreshes the current view now; never runs two refreshes at once. */
  async function refreshNow() {
    clearTimeout(poll.timer);
    if (poll.running) { poll.again = true; return; }
    poll.running = true;
    try {
      if (!document.hidden) {
        if (state.route && state.route.name === 'order' && state.order) await refreshOrder(state.order);
        else if (state.route && state.route.name === 'mismatch' && state.mismatch) await refreshMismatch(state.mismatch);
        else if (state.overview) await refreshOverview();
        noteUpdated();
      }
    } catch (err) {
      console.error('driftwatch dashboard refresh failed', err);
    } finally {
      poll.running = false;
      if (poll.again) { poll.again = false; refreshNow(); } else scheduleRefresh(POLL_MS);
    }
  }

  // ================================================================ ROUTES

  function parseRoute(hash) {
    const path = (hash || '').replace(/^#/, '');
    const m = path.match(/^\/order\/(.+)$/);
    if (m) {
      let id = m[1];
      try { id = decodeURIComponent(id); } catch (_) { /* keep raw */ }
      return { name: 'order', orderId: id };
    }
    const mm = path.match(/^\/mismatch\/(.+)$/);
    if (mm) {
      let id = mm[1];
      try { id = decodeURIComponent(id); } catch (_) { /* keep raw */ }
      return { name: 'mismatch', alertId: id };
    }
    return { name: 'overview' };
  }

  function onRoute(initial) {
    const route = parseRoute(location.hash);
    const prev = state.route;
    if (prev && prev.name === route.name && prev.orderId === route.orderId && prev.alertId === route.alertId) return;
    if (prev && prev.name === 'overview') state.overviewScroll = window.scrollY;
    state.route = route;
    state.lastResolved = null;
    const app = document.getElementById('app');

    state.mismatch = null;
    if (route.name === 'mismatch') {
      state.order = null;
      state.mismatch = buildMismatchView(route.alertId);
      app.replaceChildren(state.mismatch.root);
      document.title = `${route.alertId} · driftwatch`;
      window.scrollTo(0, 0);
      if (!initial) byId(state.mismatch.root, 'mm-title').focus({ preventScroll: true });
    } else if (route.name === 'order') {
      state.order = buildOrderView(route.orderId);
      app.replaceChildren(state.order.root);
      document.title = `${route.orderId} · driftwatch`;
      window.scrollTo(0, 0);
      if (!initial) byId(state.order.root, 'order-id').focus({ preventScroll: true });
    } else {
      state.order = null;
      if (!state.overview) state.overview = buildOverview();
      clearResolvedMarks(state.overview.root);
      state.overview.notice.replaceChildren();
      app.replaceChildren(state.overview.root);
      document.title = 'driftwatch';
      const y = state.overviewScroll;
      requestAnimationFrame(() => window.scrollTo(0, y));
    }
    document.getElementById('nav-overview')
      .setAttribute('aria-current', route.name === 'overview' ? 'page' : 'false');
    refreshNow();
  }

  function navigateToOrder(orderId) {
    location.hash = orderHref(orderId);
  }

  // ============================================================== OVERVIEW

  function buildOverview() {
    const root = cloneTemplate('tpl-overview');
    const ov = {
      root,
      table: byId(root, 'mismatch-table'),
      thead: byId(root, 'mismatch-table').querySelector('thead'),
      totalCount: byId(root, 'total-count'),
      pageInfo: byId(root, 'page-info'),
      prev: byId(root, 'page-prev'),
      next: byId(root, 'page-next'),
      empty: byId(root, 'list-empty'),
      listError: byId(root, 'list-load-error'),
      notice: byId(root, 'list-notice'),
      selects: {},
      groups: new Map(), // alert_id -> row group
    };
    wireFilters(ov);
    wirePager(ov);
    wireRowNavigation(ov);
    fillSelect(ov.selects.pattern, DEFAULT_PATTERNS);
    return ov;
  }

  function wireFilters(ov) {
    for (const [key, id] of FILTERS) {
      const sel = byId(ov.root, id);
      ov.selects[key] = sel;
      sel.value = state.filters[key];
      sel.addEventListener('change', async () => {
        if (key === 'owner' && sel.value === 'mine' && !operator.name) {
          if (!await operatorName('Whose mismatches are yours? Enter your name.')) {
            sel.value = state.filters.owner;
            return;
          }
        }
        state.filters[key] = sel.value;
        state.offset = 0;
        loadList();
      });
    }
    byId(ov.root, 'filter-reset').addEventListener('click', () => {
      state.filters = { ...DEFAULT_FILTERS };
      for (const [key] of FILTERS) ov.selects[key].value = state.filters[key];
      state.offset = 0;
      loadList();
    });
    byId(ov.root, 'filters').addEventListener('submit', (ev) => ev.preventDefault());
  }

  function wirePager(ov) {
    ov.prev.addEventListener('click', () => {
      state.offset = Math.max(0, state.offset - PAGE_SIZE);
      loadList();
    });
    ov.next.addEventListener('click', () => {
      state.offset += PAGE_SIZE;
      loadList();
    });
  }

  /** A click anywhere on a mismatch row (but not on its controls) opens the order. */
  function wireRowNavigation(ov) {
    ov.table.addEventListener('click', (ev) => {
      const target = ev.target;
      if (!(target instanceof Element)) return;
      if (target.closest('a, button, input, textarea, select, label, .resolve-row')) return;
      const row = target.closest('tr.mismatch-row');
      if (row && row.dataset.orderId) navigateToOrder(row.dataset.orderId);
    });
  }

  /**
   * Replaces a select's options with "" (All) + values, keeping its current
   * value (added as an option when the new list lacks it). No-op when the
   * list did not change, so an open select is not disturbed.
   */
  function fillSelect(sel, values) {
    const current = sel.value;
    const list = [...values];
    if (current && !list.includes(current)) list.push(current);
    const key = list.join('\n');
    if (sel.dataset.options === key) return;
    sel.dataset.options = key;
    const allLabel = sel.options[0] ? sel.options[0].textContent : 'All';
    sel.replaceChildren(h('option', { value: '', text: allLabel }),
      ...list.map((v) => h('option', { value: v, text: v })));
    sel.value = current;
  }

  async function refreshOverview() {
    await Promise.all([loadList(), loadStats(), loadReconcile(), loadStatus(), loadOpsAlerts()]);
  }

  // ---------------------------------------------------------- mismatch list

  /**
   * GET /v1/mismatches?state=&pattern=&system=&severity=&min_age=&limit=50&offset=
   * -> {total, offset, limit, mismatches: [Mismatch]}, sorted by the server.
   * state is always sent ("" means every state); other empty filters are left out.
   */
  function listQuery() {
    const p = new URLSearchParams();
    p.set('state', state.filters.state);
    for (const key of ['severity', 'pattern', 'system', 'min_age']) {
      if (state.filters[key]) p.set(key, state.filters[key]);
    }
    // owner: a name, none (unassigned), or mine (the operator's name).
    if (state.filters.owner === 'mine') p.set('owner', operator.name || 'none');
    else if (state.filters.owner) p.set('owner', state.filters.owner);
    p.set('limit', String(PAGE_SIZE));
    p.set('offset', String(state.offset));
    return `/v1/mismatches?${p}`;
  }

  async function loadList() {
    const ov = state.overview;
    if (!ov) return;
    state.listSeq += 1;
    const seq = state.listSeq;
    ov.table.setAttribute('aria-busy', 'true');
    try {
      const data = await api('GET', listQuery());
      if (seq !== state.listSeq) return; // a newer request (filters changed) wins
      const total = Number(data.total) || 0;
      if (state.offset > 0 && state.offset >= total) {
        // The page emptied (mismatches resolved): go to the last page.
        state.offset = Math.max(0, Math.floor((total - 1) / PAGE_SIZE) * PAGE_SIZE);
        await loadList();
        return;
      }
      ov.listError.replaceChildren();
      renderList(ov, data, total);
    } catch (err) {
      if (seq !== state.listSeq) return;
      checkNetwork(err);
      ov.listError.replaceChildren(loadErrorEl(err));
    } finally {
      if (seq === state.listSeq) ov.table.removeAttribute('aria-busy');
    }
  }

  function renderList(ov, data, total) {
    const rows = Array.isArray(data.mismatches) ? data.mismatches : [];
    ov.totalCount.textContent = String(total);
    const first = rows.length ? state.offset + 1 : 0;
    const last = state.offset + rows.length;
    ov.pageInfo.textContent = `${fmtInt(first)}–${fmtInt(last)} of ${fmtInt(total)}`;
    ov.prev.disabled = state.offset <= 0;
    ov.next.disabled = state.offset + PAGE_SIZE >= total;
    syncMismatchGroups(ov, rows);
    ov.empty.hidden = ov.groups.size > 0;
    noteSystems(rows);
    ensureResolvedNotice(ov.notice);
  }

  /** Keyed update of the table: one tbody.mismatch-group per alert_id. */
  function syncMismatchGroups(ov, rows) {
    const seen = new Set();
    const ordered = [];
    for (const m of rows) {
      if (!m || !m.alert_id || seen.has(m.alert_id)) continue;
      let g = ov.groups.get(m.alert_id);
      if (!g) {
        g = createGroup(m);
        ov.groups.set(m.alert_id, g);
      }
      updateGroup(g, m);
      seen.add(m.alert_id);
      ordered.push(g);
    }
    for (const [id, g] of ov.groups) {
      if (seen.has(id)) continue;
      if (keepOffList(g)) {
        g.tbody.classList.add('stale');
        ordered.push(g);
      } else {
        ov.groups.delete(id);
      }
    }
    syncChildren(ov.table, ordered.map((g) => g.tbody), ov.thead);
  }

  /**
   * A mismatch that left the current page stays visible while someone types
   * a note for it, or briefly after it was resolved here.
   */
  function keepOffList(item) {
    if (item.resolvedAt) return Date.now() - item.resolvedAt < RESOLVED_HOLD_MS;
    const f = item.form;
    if (!f) return false;
    return f.note.value.trim() !== '' || f.el.contains(document.activeElement);
  }

  function isResolvable(m) {
    return m.state === 'open' || m.state === 'escalated';
  }

  function createGroup(m) {
    const tbody = h('tbody', { class: 'mismatch-group' });
    const row = h('tr', { class: 'mismatch-row' });
    const btn = h('button', { type: 'button', class: 'resolve-btn', text: 'Resolve…' });
    const actions = h('td', { class: 'col-actions' }, btn);
    tbody.append(row);
    const g = { alertId: m.alert_id, tbody, row, actions, btn, formRow: null, form: null, sig: '', m, resolvedAt: 0 };
    btn.addEventListener('click', (ev) => {
      ev.stopPropagation();
      openListResolveForm(g);
    });
    return g;
  }

  function updateGroup(g, m) {
    g.m = m;
    g.tbody.classList.remove('stale');
    const sig = `${JSON.stringify(m)}|${fmtAge(m.detected_at)}`;
    if (sig === g.sig) return;
    g.sig = sig;
    g.tbody.dataset.alertId = m.alert_id;
    g.row.dataset.alertId = m.alert_id;
    g.row.dataset.orderId = m.order_id;
    g.row.className = `mismatch-row sev-${m.severity} state-${m.state}`;
    g.row.title = `Open order ${m.order_id}`;
    g.btn.hidden = !isResolvable(m) || Boolean(g.resolvedAt);
    g.btn.setAttribute('aria-label', `Resolve ${m.pattern} on order ${m.order_id}`);
    g.row.replaceChildren(...mismatchCells(m), g.actions);
  }

  function mismatchCells(m) {
    return [
      h('td', { class: 'col-sev' }, sevChip(m.severity)),
      h('td', { class: 'col-pattern' },
        h('a', { class: 'pattern mismatch-link', href: mismatchHref(m.alert_id), text: m.pattern, title: 'Open the mismatch: owner, runbook, audit trail' }),
        m.dimension ? h('div', { class: 'muted small', text: m.dimension }) : null),
      h('td', { class: 'col-order' }, orderLink(m.order_id)),
      h('td', { class: 'col-systems' }, flowSummary(m)),
      h('td', { class: 'col-message' }, m.message || ''),
      h('td', { class: 'col-risk num' }, fmtMoney(m.amount, m.currency)),
      h('td', { class: 'col-detected' },
        timeEl(m.detected_at),
        h('div', { class: 'muted small', text: m.resolved_at ? 'resolved' : `open ${fmtAge(m.detected_at)}` })),
      h('td', { class: 'col-state' },
        stateChip(m.state),
        h('div', { class: 'muted small', text: `by ${m.detected_by || '?'}` }),
        m.occurrences > 1 ? h('div', { class: 'muted small', text: `×${m.occurrences}` }) : null),
      h('td', { class: 'col-owner' }, ownerEl(m.owner)),
    ];
  }

  /** "shop: cancelled → erp: Pending Fulfillment (confirmed)" */
  function flowSummary(m) {
    const from = (m.source && m.source.system) || m.flow_from || '?';
    const to = (m.target && m.target.system) || m.flow_to || '';
    const side = (s) => (s ? statusText(s) : null);
    return h('span', { class: 'flow' },
      h('strong', { text: from }),
      m.source ? `: ${side(m.source)}` : '',
      h('span', { class: 'arrow', text: ' → ' }),
      to ? h('strong', { text: to }) : '',
      m.target ? `: ${side(m.target)}` : h('em', { class: 'muted', text: to ? ': no record' : 'no record' }));
  }

  /** Raw status plus canonical/payment state of a mismatch side. */
  function statusText(side) {
    const canon = [side.canonical, side.payment].filter(Boolean).join(', ');
    const raw = side.status || '';
    if (raw && canon && raw !== canon) return `${raw} (${canon})`;
    return raw || canon || '—';
  }

  function openListResolveForm(g) {
    if (!g.formRow) {
      const form = buildResolveForm(g.m, {
        onCancel: () => {
          g.formRow.remove();
          g.formRow = null;
          g.form = null;
          g.btn.setAttribute('aria-expanded', 'false');
          g.btn.focus();
        },
        onResolved: () => {
          g.resolvedAt = Date.now();
          g.btn.hidden = true;
          g.tbody.classList.add('is-resolved');
        },
      });
      g.form = form;
      g.formRow = h('tr', { class: 'resolve-row' },
        h('td', { colspan: 10 }, form.el));
      g.tbody.append(g.formRow);
      g.btn.setAttribute('aria-expanded', 'true');
    }
    if (g.form && g.form.note.isConnected) g.form.note.focus();
  }

  // ---------------------------------------------------------- resolve forms

  /**
   * A resolve form: textarea.resolve-note + button.resolve-submit.
   * POST /v1/mismatches/{alert_id}/resolve {"note", "by": operator or "dashboard"} -> Mismatch;
   * 400 note_required (empty note), 409 already_resolved. API errors are shown
   * in a .error element; success replaces the form with .resolved-ok "resolved".
   */
  function buildResolveForm(m, hooks) {
    const noteId = uid('note');
    const note = h('textarea', {
      class: 'resolve-note', id: noteId, rows: 2,
      placeholder: 'What was done, e.g. "re-sent the order to the ERP by hand (SO-1234)"',
    });
    const submit = h('button', { type: 'submit', class: 'resolve-submit', text: 'Resolve' });
    const feedback = h('div', { class: 'form-feedback', 'aria-live': 'assertive' });
    const actions = h('div', { class: 'form-actions' }, submit);
    if (hooks.onCancel) {
      actions.append(h('button', {
        type: 'button', class: 'resolve-cancel btn-secondary', text: 'Cancel', onclick: hooks.onCancel,
      }));
    }
    actions.append(h('span', { class: 'muted small', text: 'Ctrl+Enter to submit' }));
    const el = h('form', { class: 'resolve-form', novalidate: true },
      h('label', { for: noteId, text: `Resolution note for ${m.pattern} (${m.alert_id})` }),
      note, actions, feedback);
    const form = { el, note, submit, feedback, alertId: m.alert_id, orderId: m.order_id, busy: false };
    el.addEventListener('submit', (ev) => {
      ev.preventDefault();
      submitResolve(form, hooks);
    });
    note.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        submitResolve(form, hooks);
      }
    });
    return form;
  }

  async function submitResolve(form, hooks) {
    if (form.busy) return;
    form.busy = true;
    form.submit.disabled = true;
    form.feedback.replaceChildren();
    try {
      await api('POST', `/v1/mismatches/${encodeURIComponent(form.alertId)}/resolve`,
        { note: form.note.value.trim(), by: operator.name || 'dashboard' });
      hooks.onResolved();
      showResolved(form);
      scheduleRefresh(RESOLVED_HOLD_MS + 100);
    } catch (err) {
      checkNetwork(err);
      form.feedback.replaceChildren(h('p', { class: 'error', role: 'alert', text: errorText(err) }));
      if (err.code === 'already_resolved') scheduleRefresh(RESOLVED_HOLD_MS + 100);
    } finally {
      form.busy = false;
      form.submit.disabled = false;
    }
  }

  /** Replaces a form with the single .resolved-ok mark on the page. */
  function showResolved(form) {
    clearResolvedMarks(document);
    state.lastResolved = { alertId: form.alertId, orderId: form.orderId };
    form.el.replaceChildren(h('p', { class: 'resolved-msg', role: 'status' },
      h('span', { class: 'resolved-ok', text: 'resolved' }),
      ` — ${form.alertId} closed with your note.`));
  }

  /** Keeps at most one .resolved-ok on the page (older ones become plain text). */
  function clearResolvedMarks(root) {
    for (const el of root.querySelectorAll('.resolved-ok')) {
      el.classList.remove('resolved-ok');
      el.classList.add('resolved-done');
    }
    for (const el of root.querySelectorAll('.resolved-notice')) el.remove();
  }

  /**
   * After the refresh that removed a mismatch resolved here, a notice keeps
   * saying so (exactly one .resolved-ok on the page).
   */
  function ensureResolvedNotice(slot) {
    const r = state.lastResolved;
    if (!r || !slot || document.querySelector('.resolved-ok')) return;
    slot.replaceChildren(h('p', { class: 'notice resolved-notice', role: 'status' },
      h('span', { class: 'resolved-ok', text: 'resolved' }),
      ` — ${r.alertId} on order ${r.orderId} is closed.`,
      h('button', {
        type: 'button', class: 'notice-dismiss', 'aria-label': 'Dismiss', text: '×',
        onclick: () => { state.lastResolved = null; slot.replaceChildren(); },
      })));
  }

  // ------------------------------------------------------------- stats

  /** Systems seen in list rows: a fallback for the system filter. */
  const seenSystems = new Set();
  function noteSystems(rows) {
    for (const m of rows) {
      if (m.source && m.source.system) seenSystems.add(m.source.system);
      if (m.target && m.target.system) seenSystems.add(m.target.system);
      if (m.flow_from) seenSystems.add(m.flow_from);
      if (m.flow_to) seenSystems.add(m.flow_to);
    }
    const ov = state.overview;
    if (ov && !(state.stats && Array.isArray(state.stats.systems) && state.stats.systems.length)) {
      fillSelect(ov.selects.system, [...seenSystems].sort());
    }
  }

  /**
   * GET /v1/stats?window=24h&bucket=1h -> {buckets: [{start, detected,
   * resolved, ttd_mean_seconds, ttd_count, ttd_skewed}], open_total, open_by_system,
   * open_by_pattern, open_by_severity, patterns, systems}
   */
  async function loadStats() {
    const ov = state.overview;
    try {
      const st = await api('GET', '/v1/stats?window=24h&bucket=1h');
      if (state.overview !== ov) return;
      state.stats = st;
      renderStats(ov, st);
    } catch (err) {
      checkNetwork(err);
      for (const id of ['chart-drift', 'chart-ttd']) byId(ov.root, id).replaceChildren(loadErrorEl(err));
      renderSystemShare(ov, null);
    }
  }

  function renderStats(ov, st) {
    byId(ov.root, 'kpi-open').textContent = fmtInt(st.open_total || 0);
    renderSeverityKpis(byId(ov.root, 'kpi-severity'), st.open_by_severity || {});
    if (Array.isArray(st.patterns) && st.patterns.length) fillSelect(ov.selects.pattern, st.patterns);
    if (Array.isArray(st.systems) && st.systems.length) fillSelect(ov.selects.system, st.systems);
    const buckets = Array.isArray(st.buckets) ? st.buckets : [];
    renderDriftChart(byId(ov.root, 'chart-drift'), buckets);
    renderTtdChart(byId(ov.root, 'chart-ttd'), buckets);
    renderSystemShare(ov, st);
  }

  /** Severity KPI chips; clicking one filters the list by it. */
  function renderSeverityKpis(box, bySev) {
    const sig = SEVERITIES.map((sev) => bySev[sev] || 0).join(',');
    if (box.dataset.sig === sig) return; // keep focus on an unchanged button
    box.dataset.sig = sig;
    box.replaceChildren(...SEVERITIES.map((sev) => h('button', {
      type: 'button',
      class: `kpi-sev-item sev-${sev}`,
      title: `Show ${sev} mismatches`,
      dataset: { severity: sev },
      onclick: () => {
        const ov = state.overview;
        state.filters.severity = sev;
        ov.selects.severity.value = sev;
        state.offset = 0;
        loadList();
        byId(ov.root, 'h-list').scrollIntoView({ behavior: 'smooth', block: 'start' });
      },
    }, sevChip(sev), h('span', { class: 'kpi-sev-count', text: fmtInt(bySev[sev] || 0) }))));
  }

  // ---------------------------------------------------------------- charts

  /** Rounds a maximum up to 1, 2 or 5 times a power of ten. */
  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  function bucketLabel(iso) {
    const d = parseTime(iso);
    return d ? hourFmt.format(d) : String(iso || '');
  }

  /**
   * Draws a grouped bar chart as inline SVG.
   * series: [{key, label, cls, value(bucket) -> number|null, fmt(n) -> text}]
   */
  function barChart(buckets, series, opts) {
    const W = 640;
    const H = 200;
    const M = { l: 48, r: 8, t: 10, b: 24 };
    const pw = W - M.l - M.r;
    const ph = H - M.t - M.b;
    let max = 0;
    for (const b of buckets) for (const s of series) max = Math.max(max, Number(s.value(b)) || 0);
    const top = opts.niceTop ? opts.niceTop(max) : niceMax(max);
    const y = (v) => M.t + ph - (v / top) * ph;

    const root = svg('svg', {
      viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img',
      'aria-label': opts.ariaLabel, preserveAspectRatio: 'xMidYMid meet', class: 'chart-svg',
    }, svg('title', null, opts.ariaLabel));

    // Horizontal grid and y labels.
    for (const frac of [0, 0.5, 1]) {
      const v = top * frac;
      root.append(
        svg('line', { x1: M.l, x2: W - M.r, y1: y(v), y2: y(v), class: frac === 0 ? 'axis' : 'grid' }),
        svg('text', { x: M.l - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, opts.yFmt(v)));
    }

    const n = Math.max(buckets.length, 1);
    const band = pw / n;
    const barW = Math.max(1, (band * 0.8) / series.length);
    const labelEvery = Math.ceil(n / 8);
    buckets.forEach((b, i) => {
      const x0 = M.l + i * band + band * 0.1;
      series.forEach((s, j) => {
        const v = Number(s.value(b)) || 0;
        if (v <= 0) return;
        const barTop = y(v);
        root.append(svg('rect', {
          x: (x0 + j * barW).toFixed(2), y: barTop.toFixed(2), width: Math.max(barW - 1, 1).toFixed(2),
          height: (M.t + ph - barTop).toFixed(2), class: `bar ${s.cls}`, 'data-start': b.start, 'data-value': v,
        }, svg('title', null, `${bucketLabel(b.start)} (${b.start}): ${s.fmt(v)} ${s.label}`)));
      });
      if (i % labelEvery === 0) {
        root.append(svg('text', {
          x: (M.l + i * band + band / 2).toFixed(2), y: H - 6, 'text-anchor': 'middle', class: 'tick',
        }, bucketLabel(b.start)));
      }
    });
    if (max === 0) {
      root.append(svg('text', { x: M.l + pw / 2, y: M.t + ph / 2, 'text-anchor': 'middle', class: 'chart-empty' },
        opts.emptyText));
    }
    return root;
  }

  function legend(series) {
    return h('div', { class: 'legend' }, series.map((s) => h('span', { class: 'legend-item' },
      h('span', { class: `swatch ${s.cls}`, 'aria-hidden': 'true' }), s.label)));
  }

  function renderDriftChart(box, buckets) {
    const series = [
      { key: 'detected', label: 'detected', cls: 'bar-detected', value: (b) => b.detected, fmt: fmtInt },
      { key: 'resolved', label: 'resolved', cls: 'bar-resolved', value: (b) => b.resolved, fmt: fmtInt },
    ];
    const det = buckets.reduce((a, b) => a + (Number(b.detected) || 0), 0);
    const res = buckets.reduce((a, b) => a + (Number(b.resolved) || 0), 0);
    box.replaceChildren(
      barChart(buckets, series, {
        ariaLabel: `Mismatches per hour over the last 24 hours: ${det} detected, ${res} resolved`,
        yFmt: (v) => fmtInt(Math.round(v)),
        emptyText: 'no mismatches in this window',
      }),
      legend(series));
  }

  function renderTtdChart(box, buckets) {
    const series = [{
      key: 'ttd', label: 'mean time to detect', cls: 'bar-ttd',
      value: (b) => b.ttd_mean_seconds, fmt: fmtDuration,
    }];
    // ttd_mean_seconds follows the server's rule: the onset is taken no
    // later than the source's received_at, and mismatches whose onset is
    // still after their detection (ttd_skewed) are left out of the mean.
    const withData = buckets.filter((b) => Number(b.ttd_count) > 0 || Number(b.ttd_mean_seconds) > 0);
    const mean = withData.length
      ? withData.reduce((a, b) => a + Number(b.ttd_mean_seconds), 0) / withData.length : 0;
    const skewed = buckets.reduce((a, b) => a + (Number(b.ttd_skewed) || 0), 0);
    const skewedText = skewed ? `; ${fmtInt(skewed)} skewed (onset after detection) left out` : '';
    const nodes = [
      barChart(buckets, series, {
        ariaLabel: withData.length
          ? `Mean time to detect per hour; average of hourly means ${fmtDuration(mean)}${skewedText}`
          : `Mean time to detect per hour: no detections in the window${skewedText}`,
        yFmt: (v) => fmtDuration(v),
        emptyText: 'no detections in this window',
      }),
      legend(series)];
    if (skewed) {
      nodes.push(h('p', { class: 'muted small ttd-skewed', text: `${fmtInt(skewed)} skewed (onset after detection) left out of the mean.` }));
    }
    box.replaceChildren(...nodes);
  }

  /**
   * Per-system share bars: live open_by_system from /v1/stats (share of
   * open_total), else the last report's system_share (0..1).
   */
  function renderSystemShare(ov, st) {
    const box = byId(ov.root, 'system-share');
    let rows = [];
    let source = '';
    if (st && st.open_by_system && Object.keys(st.open_by_system).length) {
      const total = Number(st.open_total) || 0;
      rows = Object.entries(st.open_by_system).map(([sys, n]) => ({
        sys, share: total > 0 ? Number(n) / total : 0, label: `${fmtInt(n)} · ${fmtPct(total > 0 ? n / total : 0)}`,
      }));
      source = 'Share of open mismatches involving each system (live).';
    } else if (state.report && state.report.system_share && Object.keys(state.report.system_share).length) {
      rows = Object.entries(state.report.system_share).map(([sys, share]) => ({
        sys, share: Number(share) || 0, label: fmtPct(share),
      }));
      source = 'Share per system from the last reconciliation.';
    }
    if (!rows.length) {
      box.replaceChildren(emptyText(st ? 'No open mismatches.' : 'No data yet.'));
      return;
    }
    rows.sort((a, b) => b.share - a.share || a.sys.localeCompare(b.sys));
    box.replaceChildren(
      h('ul', { class: 'share-list' }, rows.map((r) => h('li', {
        class: 'share-row', dataset: { system: r.sys, share: r.share.toFixed(4) },
      },
      h('span', { class: 'share-label', text: r.sys }),
      h('span', { class: 'share-bar', 'aria-hidden': 'true' }, shareFill(r.share)),
      h('span', { class: 'share-value', text: r.label })))),
      h('p', { class: 'muted small', text: source }));
  }

  /**
   * The filled part of a share bar. Its width is set through the DOM: the
   * Content-Security-Policy allows no inline style attribute.
   */
  function shareFill(share) {
    const el = h('span', { class: 'share-fill' });
    el.style.width = `${Math.min(100, Math.max(0, share * 100)).toFixed(1)}%`;
    return el;
  }

  // ----------------------------------------------------- reconcile report

  /**
   * GET /v1/reconcile/latest -> report, or 404 {"code": "no_report"} before
   * the first reconciliation.
   */
  async function loadReconcile() {
    const ov = state.overview;
    const box = byId(ov.root, 'reconcile-report');
    try {
      const r = await api('GET', '/v1/reconcile/latest');
      state.report = r;
      box.replaceChildren(...reportNodes(r));
    } catch (err) {
      checkNetwork(err);
      if (err.status === 404) {
        state.report = null;
        box.replaceChildren(emptyText('There has been no reconciliation yet. The summary of the last sweep shows here once one has run.'));
      } else {
        box.replaceChildren(loadErrorEl(err));
      }
    }
  }

  function reportNodes(r) {
    // Reports before active_orders divided by open_orders: say which.
    const hasActive = r.active_orders !== undefined && r.active_orders !== null;
    const kpis = h('div', { class: 'report-kpis' },
      kpi('Orders', fmtInt(r.orders)),
      hasActive
        ? kpi('Active orders', fmtInt(r.active_orders), 'Orders active in the period: not closed, an event received in the period, an overdue flow or an open mismatch')
        : kpi('Open orders', fmtInt(r.open_orders)),
      kpi('In mismatch', fmtInt(r.orders_in_mismatch)),
      kpi('Mismatch rate', fmtPct(r.mismatch_rate), hasActive ? 'Orders in mismatch / active orders' : 'Orders in mismatch / open orders'),
      kpi('In flight', fmtInt(r.in_flight)),
      kpi('Open mismatches', fmtInt(r.open_mismatches)));

    const ttd = r.time_to_detect || {};
    const ttdSkewed = Number(ttd.skewed) > 0 ? `; ${fmtInt(ttd.skewed)} skewed (onset after detection) left out` : '';
    const ttr = r.time_to_resolve || {};
    const var_ = r.value_at_risk || {};
    const varText = Object.keys(var_).length
      ? Object.entries(var_).map(([cur, amt]) => `${amt} ${cur}`).join(' · ') : '—';
    const oldest = r.oldest_unresolved;
    const facts = factList([
      ['Finished', timeEl(r.finished_at)],
      ['Duration', r.duration_ms !== undefined ? fmtLag(r.duration_ms) : ''],
      ['Time to detect', `mean ${fmtDuration(ttd.mean_seconds)}, p90 ${fmtDuration(ttd.p90_seconds)} (${fmtInt(ttd.count || 0)})${ttdSkewed}`],
      ['Time to resolve', `mean ${fmtDuration(ttr.mean_seconds)}, p90 ${fmtDuration(ttr.p90_seconds)} (${fmtInt(ttr.count || 0)})`],
      ['Value at risk', varText],
      ['Oldest unresolved', oldest
        ? h('span', null, orderLink(oldest.order_id), ` · ${oldest.pattern} · open ${fmtDuration(oldest.age_seconds)}`)
        : 'none'],
      ['Report', r.id ? h('code', { text: r.id }) : ''],
    ]);

    const breakdowns = h('div', { class: 'report-breakdowns' },
      countTable('By severity', r.by_severity, (k) => sevChip(k), SEVERITIES),
      countTable('By pattern', r.by_pattern, (k) => k),
      countTable('By system pair', r.by_system_pair, (k) => k));

    const nodes = [kpis, facts, breakdowns];
    const top = Array.isArray(r.top_at_risk) ? r.top_at_risk.slice(0, 5) : [];
    if (top.length) {
      nodes.push(h('div', { class: 'report-top' },
        h('h3', { text: 'Orders with the most value at risk' }),
        h('table', { class: 'data-table compact' },
          h('thead', null, h('tr', null, ['Order', 'Patterns', 'Severity', 'At risk'].map((t) => h('th', { scope: 'col', text: t })))),
          h('tbody', null, top.map((t) => h('tr', null,
            h('td', null, orderLink(t.order_id)),
            h('td', { text: Array.isArray(t.patterns) && t.patterns.length ? t.patterns.join(', ') : t.pattern }),
            h('td', null, sevChip(t.severity)),
            h('td', { class: 'num', text: fmtMoney(t.amount, t.currency) })))))));
    }
    return nodes;
  }

  function kpi(label, value, hint) {
    return h('div', { class: 'mini-kpi', title: hint },
      h('span', { class: 'mini-kpi-value', text: value }),
      h('span', { class: 'mini-kpi-label', text: label }));
  }

  /** A small "key: count" table, sorted by count (or by a fixed order). */
  function countTable(title, counts, keyNode, order) {
    const entries = Object.entries(counts || {});
    if (order) entries.sort((a, b) => order.indexOf(a[0]) - order.indexOf(b[0]));
    else entries.sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    return h('div', { class: 'count-table' },
      h('h3', { text: title }),
      entries.length
        ? h('ul', null, entries.map(([k, n]) => h('li', null,
          h('span', { class: 'count-key' }, keyNode(k)), h('span', { class: 'count-n', text: fmtInt(n) }))))
        : h('p', { class: 'muted small', text: 'none' }));
  }

  // ---------------------------------------------------------------- status

  /**
   * GET /v1/status -> {stream: {name, first_seq, last_seq, messages, bytes},
   * dlq: {...}, consumers: [{name, system, filter, applied_seq, pending,
   * dead_lettered, duplicates}]}
   */
  async function loadStatus() {
    const ov = state.overview;
    const box = byId(ov.root, 'status');
    try {
      const st = await api('GET', '/v1/status');
      box.replaceChildren(...statusNodes(st));
    } catch (err) {
      checkNetwork(err);
      box.replaceChildren(loadErrorEl(err));
    }
  }

  function statusNodes(st) {
    const stream = st.stream || {};
    const dlq = st.dlq || {};
    const lastSeq = Number(stream.last_seq) || 0;
    const head = h('div', { class: 'status-head' },
      kpi('Last seq', fmtInt(stream.last_seq)),
      kpi('Messages', fmtInt(stream.messages)),
      kpi('Size', fmtBytes(stream.bytes)),
      h('div', { class: `mini-kpi ${Number(dlq.messages) > 0 ? 'warn' : ''}`.trim() },
        h('span', { class: 'mini-kpi-value', text: fmtInt(dlq.messages || 0) }),
        h('span', { class: 'mini-kpi-label', text: 'Dead letters' })));
    const note = h('p', { class: 'muted small' },
      `Stream ${stream.name || '?'}, seq ${fmtInt(stream.first_seq)}–${fmtInt(stream.last_seq)}.`);
    const cluster = st.cluster ? clusterNote(st.cluster) : null;
    const consumers = Array.isArray(st.consumers) ? st.consumers : [];
    if (!consumers.length) return [head, note, cluster, emptyText('No consumers.')].filter(Boolean);
    const table = h('table', { class: 'data-table compact consumers' },
      h('thead', null, h('tr', null,
        ['Consumer', 'Applied seq', 'Lag (pending)', 'Behind head', 'DLQ', 'Dups'].map((t, i) => h('th', {
          scope: 'col', class: i > 0 ? 'num' : null, text: t,
        })))),
      h('tbody', null, consumers.map((c) => {
        const behind = lastSeq && c.applied_seq !== undefined ? Math.max(0, lastSeq - Number(c.applied_seq)) : null;
        const pending = Number(c.pending) || 0;
        return h('tr', { class: `consumer-row ${pending > 1000 ? 'lagging' : ''}`.trim(), dataset: { consumer: c.name } },
          h('td', { title: c.filter || '' }, h('span', { text: c.name || '?' }),
            c.system ? h('span', { class: 'muted small', text: ` ${c.system}` }) : null),
          h('td', { class: 'num', text: fmtInt(c.applied_seq) }),
          h('td', { class: 'num lag', text: fmtInt(pending) }),
          h('td', { class: 'num', text: behind === null ? '—' : fmtInt(behind) }),
          h('td', { class: 'num', text: fmtInt(c.dead_lettered || 0) }),
          h('td', { class: 'num', text: fmtInt(c.duplicates || 0) }));
      })));
    return [head, note, cluster, h('div', { class: 'table-wrap' }, table)].filter(Boolean);
  }

  /** Partitions [0,1,2,3,6] -> "0–3, 6". */
  function fmtRanges(ps) {
    const out = [];
    for (let i = 0; i < ps.length;) {
      let j = i;
      while (j + 1 < ps.length && ps[j + 1] === ps[j] + 1) j += 1;
      out.push(j > i ? `${ps[i]}–${ps[j]}` : `${ps[i]}`);
      i = j + 1;
    }
    return out.length ? out.join(', ') : 'none';
  }

  /**
   * The instance of a cluster this dashboard asks (GET /v1/status's
   * cluster: {instance, partitions, owned, owners, instances: [{name}],
   * last_change: {at, gained, lost, replayed, took_ns, paused_ns}}).
   */
  function clusterNote(c) {
    const names = (Array.isArray(c.instances) ? c.instances : []).map((i) => i.name).join(', ');
    const owned = Array.isArray(c.owned) ? c.owned : [];
    const last = c.last_change || {};
    const parts = [`Instance ${c.instance}: partitions ${fmtRanges(owned)} of ${fmtInt(c.partitions)}; instances live: ${names || '—'}.`];
    if (last.at) {
      const moved = [];
      if (Array.isArray(last.gained) && last.gained.length) moved.push(`took ${fmtRanges(last.gained)}`);
      if (Array.isArray(last.lost) && last.lost.length) moved.push(`gave back ${fmtRanges(last.lost)}`);
      parts.push(`Last change ${fmtAge(last.at)} ago: ${moved.join(', ') || 'none'}, ${fmtInt(last.replayed)} events caught up in ${fmtLag(Math.round((last.took_ns || 0) / 1e6))}.`);
    }
    return h('p', { class: 'small cluster-note', dataset: { instance: c.instance }, text: parts.join(' ') });
  }

  // ------------------------------------------------------------ ops alerts

  /**
   * GET /v1/ops-alerts -> {ops_alerts: [{kind, subject, state (firing|cleared),
   * value, threshold, fired_at, cleared_at, message}]}
   */
  async function loadOpsAlerts() {
    const ov = state.overview;
    const box = byId(ov.root, 'ops-alerts');
    try {
      const data = await api('GET', '/v1/ops-alerts');
      const all = Array.isArray(data.ops_alerts) ? data.ops_alerts : [];
      const firing = all.filter((a) => a.state === 'firing');
      const cleared = all.length - firing.length;
      const nodes = [];
      if (!firing.length) nodes.push(h('p', { class: 'ok-text', text: 'No ops alerts firing.' }));
      else {
        nodes.push(h('ul', { class: 'ops-list' }, firing.map((a) => h('li', {
          class: 'ops-alert', dataset: { kind: a.kind, subject: a.subject },
        },
        h('div', { class: 'ops-alert-head' },
          h('span', { class: 'chip firing', text: 'firing' }),
          h('strong', { text: a.kind || '?' }),
          a.subject ? h('span', { class: 'muted', text: ` · ${a.subject}` }) : null),
        h('p', { class: 'ops-alert-msg', text: a.message || '' }),
        h('p', { class: 'muted small' },
          `value ${fmtNum(a.value)} / threshold ${fmtNum(a.threshold)} · since `, timeEl(a.fired_at))))));
      }
      if (cleared > 0) nodes.push(h('p', { class: 'muted small', text: `${cleared} cleared.` }));
      box.replaceChildren(...nodes);
      box.closest('.card').classList.toggle('card-alert', firing.length > 0);
    } catch (err) {
      checkNetwork(err);
      box.replaceChildren(loadErrorEl(err));
    }
  }

  function fmtNum(v) {
    if (v === null || v === undefined) return '—';
    const n = Number(v);
    return Number.isInteger(n) ? n.toLocaleString() : n.toFixed(3).replace(/0+$/, '').replace(/\.$/, '');
  }

  // ============================================================ ORDER PAGE

  function buildOrderView(orderId) {
    const root = cloneTemplate('tpl-order');
    const v = {
      root,
      orderId,
      asOf: '',              // RFC 3339 (UTC) or '' for now
      cards: new Map(),      // alert_id -> mismatch card
      systemsSig: '',
      replaySig: '',
      mismatchSystems: new Set(),
      gapSeqs: new Set(),
      el: {
        error: byId(root, 'order-error'),
        sections: byId(root, 'order-sections'),
        mismatches: byId(root, 'order-mismatches'),
        mismatchesEmpty: byId(root, 'order-mismatches-empty'),
        mismatchCount: byId(root, 'order-mismatch-count'),
        notice: byId(root, 'order-notice'),
        systems: byId(root, 'order-systems').querySelector('tbody'),
        systemsError: byId(root, 'order-systems-error'),
        gaps: byId(root, 'order-gaps'),
        gapCount: byId(root, 'order-gap-count'),
        timeline: byId(root, 'order-timeline').querySelector('tbody'),
        timelineError: byId(root, 'order-timeline-error'),
        timelineEmpty: byId(root, 'order-timeline-empty'),
        asOf: byId(root, 'as-of'),
        asOfInfo: byId(root, 'as-of-info'),
      },
    };
    byId(root, 'order-id').textContent = orderId;
    wireAsOf(v);
    return v;
  }

  /** The "as of" input reloads the systems table with ?as_of=<RFC3339>. */
  function wireAsOf(v) {
    const input = v.el.asOf;
    const apply = () => {
      if (!input.value) {
        v.asOf = '';
      } else {
        const d = new Date(input.value); // datetime-local: the browser's local time
        if (Number.isNaN(d.getTime())) return;
        v.asOf = d.toISOString();
      }
      v.systemsSig = '';
      renderAsOfInfo(v);
      refreshNow();
    };
    input.addEventListener('change', apply);
    byId(v.root, 'as-of-clear').addEventListener('click', () => {
      input.value = '';
      apply();
    });
  }

  function renderAsOfInfo(v) {
    if (!v.asOf) {
      v.el.asOfInfo.replaceChildren('Showing the current state.');
    } else {
      v.el.asOfInfo.replaceChildren('Systems as they were at ', timeEl(v.asOf), '.');
    }
  }

  /**
   * GET /v1/orders/{id} (live: open mismatches, and systems unless time
   * travelling), GET /v1/orders/{id}?as_of= (systems in the past) and
   * GET /v1/orders/{id}/replay (timeline and gaps), in parallel.
   */
  async function refreshOrder(v) {
    const id = v.orderId;
    const asOf = v.asOf;
    const [live, past, replay] = await Promise.allSettled([
      api('GET', orderPath(id)),
      asOf ? api('GET', `${orderPath(id)}?as_of=${encodeURIComponent(asOf)}`) : Promise.resolve(null),
      loadReplay(id),
    ]);
    if (state.order !== v || v.asOf !== asOf) return; // navigated away or superseded

    if (live.status === 'rejected') {
      checkNetwork(live.reason);
      if (live.reason.status === 404) {
        renderOrderNotFound(v, live.reason);
        return;
      }
      v.el.error.replaceChildren(loadErrorEl(live.reason));
    } else {
      v.el.error.replaceChildren();
      v.el.sections.hidden = false;
      renderOrderMismatches(v, live.value.open_mismatches || []);
    }

    if (asOf) {
      if (past.status === 'fulfilled') renderSystems(v, past.value);
      else renderSystemsError(v, past.reason);
    } else if (live.status === 'fulfilled') {
      renderSystems(v, live.value);
    }

    if (replay.status === 'fulfilled') {
      v.el.timelineError.replaceChildren();
      renderReplay(v, replay.value);
    } else {
      checkNetwork(replay.reason);
      if (replay.reason.status === 404) renderReplay(v, { events: [], gaps: [] });
      else v.el.timelineError.replaceChildren(loadErrorEl(replay.reason));
    }
  }

  /** GET /v1/orders/{id}/replay, falling back to /timeline when the route is absent. */
  async function loadReplay(id) {
    if (!state.replayMissing) {
      try {
        return await api('GET', `${orderPath(id)}/replay`);
      } catch (err) {
        if (!(err.status === 404 && err.code === 'not_found')) throw err;
        state.replayMissing = true;
      }
    }
    const t = await api('GET', `${orderPath(id)}/timeline`);
    return { ...t, gaps: t.gaps || [] };
  }

  function renderOrderNotFound(v, err) {
    v.el.sections.hidden = true;
    v.el.error.replaceChildren(h('div', { class: 'not-found' },
      h('p', { class: 'error', role: 'alert', text: errorText(err) }),
      h('p', { class: 'muted' }, 'The page keeps checking: it fills in as soon as a system sends an event for this order. ',
        h('a', { href: '#/', text: 'Back to the mismatch list' }))));
  }

  // ----------------------------------------------------- order: mismatches

  function renderOrderMismatches(v, list) {
    const seen = new Set();
    const ordered = [];
    v.mismatchSystems = new Set();
    for (const m of list) {
      if (!m || !m.alert_id || seen.has(m.alert_id)) continue;
      seen.add(m.alert_id);
      let card = v.cards.get(m.alert_id);
      if (!card) {
        card = createMismatchCard(m);
        v.cards.set(m.alert_id, card);
      }
      updateMismatchCard(card, m);
      ordered.push(card);
      for (const side of [m.source, m.target]) if (side && side.system) v.mismatchSystems.add(side.system);
      if (m.flow_to) v.mismatchSystems.add(m.flow_to);
    }
    for (const [id, card] of v.cards) {
      if (seen.has(id)) continue;
      if (keepOffList(card)) ordered.push(card);
      else v.cards.delete(id);
    }
    syncChildren(v.el.mismatches, ordered.map((c) => c.el));
    v.el.mismatchesEmpty.hidden = ordered.length > 0;
    v.el.mismatchCount.textContent = `(${list.length})`;
    ensureResolvedNotice(v.el.notice);
  }

  function createMismatchCard(m) {
    const body = h('div', { class: 'om-body' });
    const card = { alertId: m.alert_id, el: null, body, form: null, sig: '', resolvedAt: 0 };
    const form = buildResolveForm(m, {
      onResolved: () => {
        card.resolvedAt = Date.now();
        card.el.classList.add('is-resolved');
        focusBtn.hidden = true;
      },
    });
    card.form = form;
    // Focuses the (always visible) note: the list's resolve-btn, here.
    const focusBtn = h('button', {
      type: 'button', class: 'resolve-btn btn-secondary', text: 'Resolve…',
      'aria-label': `Resolve ${m.pattern}`,
      onclick: () => { if (form.note.isConnected) form.note.focus(); },
    });
    card.el = h('article', {
      class: `order-mismatch sev-${m.severity}`, dataset: { alertId: m.alert_id },
      'aria-label': `${m.severity} ${m.pattern}`,
    }, body, h('div', { class: 'om-resolve' }, focusBtn, form.el));
    return card;
  }

  function updateMismatchCard(card, m) {
    const sig = JSON.stringify(m);
    if (sig === card.sig) return;
    card.sig = sig;
    card.el.className = `order-mismatch sev-${m.severity} state-${m.state}${card.resolvedAt ? ' is-resolved' : ''}`;
    card.body.replaceChildren(...mismatchCardBody(m));
  }

  function mismatchCardBody(m) {
    const head = h('header', { class: 'om-head' },
      sevChip(m.severity),
      h('strong', { class: 'pattern', text: m.pattern }),
      stateChip(m.state),
      h('span', { class: 'muted small', text: `detected by ${m.detected_by || '?'}` }),
      m.occurrences > 1 ? h('span', { class: 'muted small', text: `×${m.occurrences}` }) : null,
      h('code', { class: 'alert-id', text: m.alert_id }),
      h('a', { class: 'mismatch-link', href: mismatchHref(m.alert_id), text: 'Owner, runbook, trail →' }));
    const msg = h('p', { class: 'om-message', text: m.message || '' });
    const versions = Object.entries(m.mapping_versions || {}).map(([p, n]) => `${p} v${n}`).join(', ');
    const replay = Array.isArray(m.replay_seqs) && m.replay_seqs.length
      ? h('span', { class: 'seq-list' }, m.replay_seqs.map((s) => seqButton(s))) : '';
    const facts = factList([
      ['Owner', ownerEl(m.owner)],
      ['Source', sideNode(m.source, m.flow_from)],
      ['Target', sideNode(m.target, m.flow_to)],
      ['Expected', m.expected ? `${m.expected}${m.dimension ? ` (${m.dimension})` : ''}` : ''],
      ['Onset', timeEl(m.onset_at)],
      ['Deadline', timeEl(m.deadline)],
      ['Detected', h('span', null, timeEl(m.detected_at), h('span', { class: 'muted', text: ` · open ${fmtAge(m.detected_at)}` }))],
      ['Value at risk', m.amount ? fmtMoney(m.amount, m.currency) : ''],
      ['Mapping', versions],
      ['Events', replay],
    ], 'facts om-facts');
    const nodes = [head, msg, facts];
    const audit = Array.isArray(m.audit) ? m.audit : [];
    if (audit.length) {
      nodes.push(h('details', { class: 'audit' },
        h('summary', { text: `Audit trail (${audit.length})` }),
        h('ol', null, audit.map((a) => h('li', null,
          timeEl(a.at), ' ', h('strong', { text: a.action || '' }),
          a.by ? ` by ${a.by}` : '',
          a.note ? h('q', { text: a.note }) : null)))));
    }
    return nodes;
  }

  /** One side of a mismatch: system, raw status (canonical), when, seq, actor. */
  function sideNode(side, fallbackSystem) {
    if (!side) {
      return h('span', null, h('strong', { text: fallbackSystem || '?' }), h('em', { class: 'muted', text: ' has no record of the order' }));
    }
    return h('span', { class: 'side' },
      h('strong', { text: side.system }), ': ',
      h('span', { text: statusText(side), title: side.status_field ? `field ${side.status_field}` : null }),
      ' at ', timeEl(side.occurred_at),
      side.seq ? [' ', seqButton(side.seq)] : '',
      side.actor ? h('span', { class: 'muted', text: ` · ${side.actor}` }) : '');
  }

  // -------------------------------------------------------- order: systems

  /**
   * systems: [{system, platform, role, record, has_record, status,
   * status_field, unmapped, canonical, payment, occurred_at, received_at,
   * seq, event_id, actor, clock_skew, mapping_version, amount, currency,
   * events, acknowledged: [{system, event_id, ack_system, ack_event_id, ack_seq}]}]
   */
  function renderSystems(v, view) {
    const systems = Array.isArray(view && view.systems) ? view.systems : [];
    const sig = JSON.stringify(systems) + [...v.mismatchSystems].join(',');
    v.el.systemsError.replaceChildren();
    if (sig === v.systemsSig) return;
    v.systemsSig = sig;
    v.el.systems.replaceChildren(...systems.map((s) => systemRow(v, s)));
  }

  function renderSystemsError(v, err) {
    checkNetwork(err);
    v.systemsSig = '';
    v.el.systems.replaceChildren();
    v.el.systemsError.replaceChildren(h('p', { class: 'error', role: 'alert', text: errorText(err) }));
  }

  function systemRow(v, s) {
    const cls = ['system-row'];
    if (s.record) cls.push('record');
    if (!s.has_record) cls.push('no-record');
    if (s.unmapped) cls.push('unmapped');
    if (v.mismatchSystems.has(s.system)) cls.push('in-mismatch');
    const acks = Array.isArray(s.acknowledged) ? s.acknowledged : [];
    const nameCell = h('th', { scope: 'row' },
      h('strong', { text: s.system }),
      s.record ? h('span', { class: 'chip record-chip', text: 'record', title: 'the record system' }) : null,
      h('div', { class: 'muted small', text: [s.platform, s.role].filter(Boolean).join(' · ') }));
    if (!s.has_record) {
      return h('tr', { class: cls.join(' '), dataset: { system: s.system } },
        nameCell,
        h('td', { colspan: 11 }, h('em', { class: 'muted', text: 'no record of this order' }),
          s.events ? h('span', { class: 'muted small', text: ` (${s.events} events, none with a status)` }) : null));
    }
    return h('tr', { class: cls.join(' '), dataset: { system: s.system } },
      nameCell,
      h('td', null,
        h('span', { class: 'raw-status', text: s.status || '—', title: s.status_field ? `field ${s.status_field}` : null }),
        s.unmapped ? flagChip('unmapped', 'flag-warn', 'not in the platform\'s mapping table') : null),
      h('td', { title: facetTitle(s.fulfilment) }, s.canonical ? h('span', { class: `canon canon-${s.canonical}`, text: s.canonical }) : '—'),
      h('td', { title: facetTitle(s.payment_facet) }, s.payment || '—'),
      h('td', null, timeEl(s.occurred_at), s.clock_skew ? flagChip('clock skew', 'flag-warn') : null),
      h('td', null, timeEl(s.received_at)),
      h('td', { class: 'num' }, s.seq ? seqButton(s.seq) : '—'),
      h('td', { text: s.actor || '—' }),
      h('td', { class: 'num', text: fmtMoney(s.amount, s.currency) }),
      h('td', { class: 'num', text: s.mapping_version ? `v${s.mapping_version}` : '—' }),
      h('td', { class: 'num', text: fmtInt(s.events || 0) }),
      h('td', null, acks.length
        ? h('ul', { class: 'ack-list' }, acks.map((a) => h('li', null,
          `${a.system} `, h('code', { text: a.event_id }),
          a.ack_seq ? [' via ', seqButton(a.ack_seq)] : '')))
        : h('span', { class: 'muted', text: '—' })));
  }

  /** Tooltip: which event set a dimension (fulfilment/payment facet). */
  function facetTitle(f) {
    if (!f) return null;
    return `${f.status} (${f.state}) from seq ${f.seq}, occurred ${f.occurred_at}, received ${f.received_at}${f.actor ? `, ${f.actor}` : ''}`;
  }

  // ------------------------------------------------ order: gaps + timeline

  /**
   * replay: {events: [{seq, system, kind, event_id, status, status_field,
   * canonical, payment, unmapped, ignored, occurred_at, received_at, lag_ms,
   * actor, ack_of, acked_by, current, late, clock_skew, notes}],
   * gaps: [{system, source, after_seq, pattern, severity, alert_id, late, message}]}
   */
  function renderReplay(v, data) {
    const events = Array.isArray(data.events) ? data.events : [];
    const gaps = Array.isArray(data.gaps) ? data.gaps : [];
    const sig = JSON.stringify([events, gaps]);
    if (sig === v.replaySig) return;
    v.replaySig = sig;
    renderGaps(v, gaps);
    renderTimeline(v, events, gaps);
  }

  function renderGaps(v, gaps) {
    v.el.gapCount.textContent = `(${gaps.length})`;
    v.el.gaps.closest('.card').classList.toggle('has-gaps', gaps.length > 0);
    if (!gaps.length) {
      v.el.gaps.replaceChildren(h('p', { class: 'ok-text', text: 'No flow gaps: every flow was reflected within its SLA. Findings that are not flow gaps (a manual override, an illegal transition, clock skew, a gate flag) are listed with the open mismatches.' }));
      return;
    }
    v.el.gaps.replaceChildren(h('ul', { class: 'gap-list' }, gaps.map((g) => h('li', {
      class: `gap sev-${g.severity || 'high'}`,
      dataset: { system: g.system, afterSeq: g.after_seq, source: g.source },
    },
    sevChip(g.severity),
    h('strong', { text: g.system || '?' }),
    h('span', { class: 'muted small', text: ` ${g.pattern || ''}${g.late ? ' (reflected late)' : ''}` }),
    h('span', { class: 'gap-msg', text: ` ${g.message || ''}` }),
    g.after_seq ? h('span', { class: 'muted small' }, ' after ', seqButton(g.after_seq, `event #${g.after_seq}`)) : null))));
  }

  function renderTimeline(v, events, gaps) {
    const byEventId = new Map();
    for (const e of events) if (e.event_id) byEventId.set(`${e.event_id}`, e);
    const gapsBySeq = new Map();
    for (const g of gaps) {
      const list = gapsBySeq.get(g.after_seq) || [];
      list.push(g);
      gapsBySeq.set(g.after_seq, list);
    }
    const rows = [];
    for (const e of events) {
      const eventGaps = gapsBySeq.get(e.seq) || [];
      rows.push(timelineRow(e, byEventId, eventGaps.length > 0));
      for (const g of eventGaps) {
        rows.push(h('tr', { class: 'gap-marker', dataset: { system: g.system, afterSeq: g.after_seq } },
          h('td', { colspan: 10 },
            h('span', { class: 'gap-icon', 'aria-hidden': 'true', text: '⚠ ' }),
            h('strong', { text: `Gap: ${g.system || '?'} ` }), g.message || '')));
      }
    }
    v.el.timeline.replaceChildren(...rows);
    v.el.timelineEmpty.hidden = events.length > 0;
  }

  function timelineRow(e, byEventId, hasGap) {
    const cls = ['timeline-event', `kind-${e.kind || 'status'}`];
    if (e.current) cls.push('current');
    if (e.late) cls.push('late');
    if (e.clock_skew) cls.push('skew');
    if (e.ignored) cls.push('ignored');
    if (hasGap) cls.push('has-gap');
    return h('tr', {
      class: cls.join(' '),
      dataset: { seq: e.seq, system: e.system, eventId: e.event_id },
    },
    h('td', { class: 'num' }, h('span', { class: 'seq', text: `#${e.seq}` })),
    h('td', null, h('strong', { text: e.system })),
    h('td', { text: e.kind || '' }),
    h('td', null, eventStatus(e)),
    h('td', null, timeEl(e.occurred_at)),
    h('td', null, timeEl(e.received_at)),
    h('td', { class: `num ${e.lag_ms < 0 ? 'neg' : ''}`.trim(), text: fmtLag(e.lag_ms), title: `${e.lag_ms} ms from occurred to received` }),
    h('td', { text: e.actor || '—' }),
    h('td', null, ackLinks(e, byEventId)),
    h('td', null, eventFlags(e)));
  }

  function eventStatus(e) {
    const canon = [e.canonical, e.payment].filter(Boolean).join(', ');
    return h('span', { class: 'ev-status' },
      h('span', { class: 'raw-status', text: e.status || '—', title: e.status_field ? `field ${e.status_field}` : null }),
      canon ? [h('span', { class: 'arrow', text: ' → ' }), h('span', { class: 'canon', text: canon })] : '',
      e.unmapped ? flagChip('unmapped', 'flag-warn') : null,
      e.ignored ? flagChip('ignored', 'flag-muted', 'this status says nothing about the order state') : null);
  }

  /** ack_of (the acknowledged event's id) and acked_by (the acks it got). */
  function ackLinks(e, byEventId) {
    const parts = [];
    if (e.ack_of) {
      const target = byEventId.get(`${e.ack_of}`);
      parts.push(h('div', null, 'ack of ',
        target ? seqButton(target.seq, `${target.system} #${target.seq}`) : h('code', { text: e.ack_of })));
    }
    for (const a of Array.isArray(e.acked_by) ? e.acked_by : []) {
      parts.push(h('div', null, 'acked by ',
        a.ack_seq ? seqButton(a.ack_seq, `${a.ack_system} #${a.ack_seq}`) : h('span', { text: a.ack_system })));
    }
    return parts.length ? parts : h('span', { class: 'muted', text: '—' });
  }

  function eventFlags(e) {
    const flags = [];
    if (e.current) flags.push(flagChip('current', 'flag-current', 'this system\'s current state'));
    if (e.late) flags.push(flagChip('late', 'flag-warn', 'arrived after a newer event of the same system'));
    if (e.clock_skew) flags.push(flagChip('clock skew', 'flag-warn', 'occurred_at is in the future of received_at'));
    const notes = Array.isArray(e.notes) ? e.notes : [];
    return [flags, notes.length ? h('ul', { class: 'notes' }, notes.map((n) => h('li', { text: n }))) : null];
  }

  /** Scrolls to an event of the timeline and flashes it. */
  function focusTimelineSeq(seq) {
    const v = state.order;
    if (!v) return;
    const row = [...v.el.timeline.querySelectorAll('tr.timeline-event')]
      .find((r) => r.dataset.seq === String(seq));
    if (!row) return;
    row.scrollIntoView({ behavior: 'smooth', block: 'center' });
    row.classList.remove('flash');
    void row.offsetWidth; // restart the animation
    row.classList.add('flash');
  }

  // ========================================================= MISMATCH PAGE

  function buildMismatchView(alertId) {
    const root = cloneTemplate('tpl-mismatch');
    const v = {
      root,
      alertId,
      m: null,
      sigs: {},               // part -> JSON of what it shows, to redraw only on change
      resolveForm: null,
      resolvedHere: false,
      el: {
        title: byId(root, 'mm-title'),
        chips: byId(root, 'mm-chips'),
        orderLink: byId(root, 'mm-order-link'),
        error: byId(root, 'mm-error'),
        sections: byId(root, 'mm-sections'),
        owner: byId(root, 'mm-owner'),
        take: byId(root, 'mm-take'),
        unassign: byId(root, 'mm-unassign'),
        handoverForm: byId(root, 'mm-handover-form'),
        handover: byId(root, 'mm-handover'),
        handoverSubmit: byId(root, 'mm-handover-submit'),
        ownerFeedback: byId(root, 'mm-owner-feedback'),
        message: byId(root, 'mm-message'),
        facts: byId(root, 'mm-facts'),
        runbook: byId(root, 'mm-runbook'),
        noteForm: byId(root, 'mm-note-form'),
        note: byId(root, 'mm-note'),
        noteSubmit: byId(root, 'mm-note-submit'),
        noteFeedback: byId(root, 'mm-note-feedback'),
        resolve: byId(root, 'mm-resolve'),
        audit: byId(root, 'mm-audit'),
        auditCount: byId(root, 'mm-audit-count'),
      },
    };
    byId(root, 'mm-alert-id').textContent = alertId;
    v.el.title.textContent = alertId;
    wireMismatchActions(v);
    return v;
  }

  /** GET /v1/mismatches/{alert_id} -> Mismatch (with its runbook). */
  async function refreshMismatch(v) {
    try {
      const m = await api('GET', `/v1/mismatches/${encodeURIComponent(v.alertId)}`);
      if (state.mismatch !== v) return;
      v.el.error.replaceChildren();
      renderMismatch(v, m);
    } catch (err) {
      if (state.mismatch !== v) return;
      checkNetwork(err);
      if (err.status === 404) v.el.sections.hidden = true;
      v.el.error.replaceChildren(h('p', { class: 'error', role: 'alert', text: errorText(err) }));
    }
  }

  /** Redraws part of the page when what it shows changed (keeps focus and selection otherwise). */
  function changed(v, part, value) {
    const sig = JSON.stringify(value);
    if (v.sigs[part] === sig) return false;
    v.sigs[part] = sig;
    return true;
  }

  function renderMismatch(v, m) {
    v.m = m;
    v.el.sections.hidden = false;
    const resolved = m.state === 'resolved';
    if (changed(v, 'head', [m.pattern, m.severity, m.state, m.order_id, m.detected_by, m.occurrences])) {
      v.el.title.textContent = m.pattern || v.alertId;
      v.el.chips.replaceChildren();
      appendChildren(v.el.chips, [sevChip(m.severity), ' ', stateChip(m.state),
        h('span', { class: 'muted small', text: ` detected by ${m.detected_by || '?'}` }),
        m.occurrences > 1 ? h('span', { class: 'muted small', text: ` · seen ×${m.occurrences}` }) : null]);
      v.el.orderLink.textContent = `Order ${m.order_id}`;
      v.el.orderLink.setAttribute('href', orderHref(m.order_id));
      document.title = `${m.pattern} · ${m.order_id} · driftwatch`;
    }
    if (changed(v, 'owner', [m.owner, m.state, operator.name])) {
      v.el.owner.replaceChildren(ownerEl(m.owner));
      v.el.owner.dataset.owner = m.owner || '';
      v.el.take.hidden = resolved || (Boolean(operator.name) && m.owner === operator.name);
      v.el.take.textContent = operator.name ? `Take it (${operator.name})` : 'Take it';
      v.el.unassign.hidden = resolved || !m.owner;
      v.el.handoverForm.hidden = resolved;
      if (resolved) {
        v.el.ownerFeedback.replaceChildren(h('p', { class: 'muted small', text: 'Resolved: its owner no longer changes.' }));
      }
    }
    if (changed(v, 'what', [m.message, m.source, m.target, m.expected, m.onset_at, m.deadline, m.detected_at, m.resolved_at, m.escalation, m.amount, m.mapping_versions, m.replay_seqs])) {
      v.el.message.textContent = m.message || '';
      const versions = Object.entries(m.mapping_versions || {}).map(([p, n]) => `${p} v${n}`).join(', ');
      v.el.facts.replaceChildren(factList([
        ['Source', sideNode(m.source, m.flow_from)],
        ['Target', (m.target || m.flow_to || m.gate_target) ? sideNode(m.target, m.flow_to || m.gate_target) : ''],
        ['Expected', m.expected ? `${m.expected}${m.dimension ? ` (${m.dimension})` : ''}` : ''],
        ['Onset', m.onset_at ? timeEl(m.onset_at) : ''],
        ['Deadline', m.deadline ? timeEl(m.deadline) : ''],
        ['Detected', h('span', null, timeEl(m.detected_at), resolved ? '' : h('span', { class: 'muted', text: ` · open ${fmtAge(m.detected_at)}` }))],
        ['Escalated', m.escalation ? h('span', null, timeEl(m.escalated_at), ` · ${m.escalation}`) : ''],
        ['Resolved', m.resolved_at ? timeEl(m.resolved_at) : ''],
        ['Value at risk', m.amount ? fmtMoney(m.amount, m.currency) : ''],
        ['Mapping', versions],
      ], 'facts om-facts'));
    }
    if (changed(v, 'runbook', m.runbook || null)) {
      v.el.runbook.replaceChildren(...runbookNodes(m.runbook));
    }
    const audit = Array.isArray(m.audit) ? m.audit : [];
    if (changed(v, 'audit', audit)) {
      v.el.auditCount.textContent = `(${audit.length})`;
      v.el.audit.replaceChildren(...audit.map(auditItem));
    }
    if (!resolved && !v.resolveForm) {
      v.resolveForm = buildResolveForm(m, { onResolved: () => { v.resolvedHere = true; } });
      v.el.resolve.replaceChildren(v.resolveForm.el);
    } else if (resolved && !v.resolvedHere && changed(v, 'resolved', m.resolved_at)) {
      v.resolveForm = null;
      v.el.resolve.replaceChildren(h('p', { class: 'resolved-msg' },
        h('span', { class: 'resolved-done', text: 'resolved' }), ' ', m.resolved_at ? timeEl(m.resolved_at) : ''));
    }
  }

  /**
   * A runbook: {summary, causes[], checks[], commands[], url?}. The
   * commands are shown as code with a copy button; the url (http or https
   * only) as a link to the team's own runbook.
   */
  function runbookNodes(rb) {
    if (!rb) return [emptyText('No runbook for this pattern.')];
    const nodes = String(rb.summary || '').split('\n\n').filter(Boolean)
      .map((p) => h('p', { class: 'rb-summary', text: p }));
    const causes = Array.isArray(rb.causes) ? rb.causes : [];
    const checks = Array.isArray(rb.checks) ? rb.checks : [];
    const commands = Array.isArray(rb.commands) ? rb.commands : [];
    if (causes.length) {
      nodes.push(h('h3', { text: 'Usual causes' }), h('ul', { class: 'rb-causes' }, causes.map((c) => h('li', { text: c }))));
    }
    if (checks.length) {
      nodes.push(h('h3', { text: 'First checks' }), h('ol', { class: 'rb-checks' }, checks.map((c) => h('li', { text: c }))));
    }
    if (commands.length) {
      nodes.push(h('h3', { text: 'Commands' }), h('div', { class: 'rb-commands' }, commands.map(commandLine)));
    }
    if (rb.url && /^https?:\/\//i.test(rb.url)) {
      nodes.push(h('p', { class: 'rb-link' },
        h('a', { href: rb.url, target: '_blank', rel: 'noopener noreferrer', text: 'Your team\'s runbook' }),
        h('span', { class: 'muted small', text: ` ${rb.url}` })));
    }
    return nodes;
  }

  function commandLine(cmd) {
    const code = h('code', { class: 'rb-command-text', text: cmd });
    const btn = h('button', { type: 'button', class: 'copy-btn btn-secondary', text: 'Copy', 'aria-label': `Copy ${cmd}` });
    btn.addEventListener('click', async () => {
      try {
        await navigator.clipboard.writeText(cmd);
        btn.textContent = 'Copied';
      } catch (_) {
        // No clipboard (a page not served over https or from localhost): select it.
        const range = document.createRange();
        range.selectNodeContents(code);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        btn.textContent = 'Selected';
      }
      setTimeout(() => { btn.textContent = 'Copy'; }, 1500);
    });
    return h('div', { class: 'rb-command' }, code, btn);
  }

  /** One audit entry: when, what (assigned: from → to), by whom, the note. */
  function auditItem(a) {
    const what = a.action === 'assigned'
      ? [h('strong', { text: 'assigned' }), ' ', ownerEl(a.from), ' → ', ownerEl(a.to)]
      : h('strong', { text: a.action || '?' });
    return h('li', { class: `audit-entry action-${a.action || 'unknown'}`, dataset: { action: a.action } },
      timeEl(a.at), ' ', what,
      a.by ? h('span', { class: 'muted', text: ` by ${a.by}` }) : null,
      a.note ? h('q', { text: a.note }) : null);
  }

  function wireMismatchActions(v) {
    v.el.take.addEventListener('click', async () => {
      const name = await operatorName();
      if (name) assignMismatch(v, name);
    });
    v.el.unassign.addEventListener('click', () => assignMismatch(v, ''));
    v.el.handoverForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const owner = v.el.handover.value.trim();
      if (!owner) {
        v.el.ownerFeedback.replaceChildren(h('p', { class: 'error', role: 'alert', text: 'Enter the person or team that takes it over.' }));
        v.el.handover.focus();
        return;
      }
      assignMismatch(v, owner);
    });
    v.el.noteForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      addNote(v);
    });
    v.el.note.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
        ev.preventDefault();
        addNote(v);
      }
    });
  }

  /**
   * POST /v1/mismatches/{alert_id}/assign {"owner", "by"} -> Mismatch;
   * owner "" unassigns. The operator's name (asked once) is "by".
   */
  async function assignMismatch(v, owner) {
    const by = await operatorName();
    if (!by) return;
    const buttons = [v.el.take, v.el.unassign, v.el.handoverSubmit];
    for (const b of buttons) b.disabled = true;
    v.el.ownerFeedback.replaceChildren();
    try {
      const m = await api('POST', `/v1/mismatches/${encodeURIComponent(v.alertId)}/assign`, { owner, by });
      if (owner && v.el.handover.value.trim() === owner) v.el.handover.value = '';
      renderMismatch(v, m);
      v.el.ownerFeedback.replaceChildren(h('p', { class: 'ok-text owner-changed', role: 'status', text: owner ? `Assigned to ${owner}.` : 'Unassigned.' }));
    } catch (err) {
      checkNetwork(err);
      v.el.ownerFeedback.replaceChildren(h('p', { class: 'error', role: 'alert', text: errorText(err) }));
    } finally {
      for (const b of buttons) b.disabled = false;
    }
  }

  /** POST /v1/mismatches/{alert_id}/notes {"note", "by"} -> Mismatch. */
  async function addNote(v) {
    const note = v.el.note.value.trim();
    if (!note) {
      v.el.noteFeedback.replaceChildren(h('p', { class: 'error', role: 'alert', text: 'Write the note first.' }));
      v.el.note.focus();
      return;
    }
    const by = await operatorName();
    if (!by) return;
    v.el.noteSubmit.disabled = true;
    v.el.noteFeedback.replaceChildren();
    try {
      const m = await api('POST', `/v1/mismatches/${encodeURIComponent(v.alertId)}/notes`, { note, by });
      v.el.note.value = '';
      renderMismatch(v, m);
      v.el.noteFeedback.replaceChildren(h('p', { class: 'ok-text note-added', role: 'status', text: 'Note added to the audit trail.' }));
    } catch (err) {
      checkNetwork(err);
      v.el.noteFeedback.replaceChildren(h('p', { class: 'error', role: 'alert', text: errorText(err) }));
    } finally {
      v.el.noteSubmit.disabled = false;
    }
  }

  // ================================================================= START

  function wireHeader() {
    document.getElementById('order-search-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const input = document.getElementById('order-search');
      const id = input.value.trim();
      if (!id) return;
      input.value = '';
      navigateToOrder(id);
    });
  }

  function start() {
    wireHeader();
    wireSignIn();
    wireOperator();
    window.addEventListener('hashchange', () => onRoute(false));
    document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshNow(); });
    onRoute(true);
  }

  start();
})();

// The ticketlog console: a client of the HTTP API in docs/openapi.json,
// served by `ticketlog serve` from files compiled into the binary. Plain
// ES2020, no framework, no build step; every piece of data reaches the page
// through textContent (never innerHTML), and the page runs under a CSP that
// allows only this origin's script, style and connections.
//
// Views: Board (three columns paged by the API's `after`/`limit` cursor;
// create, edit, move, delete, each with `If-Match` and a conflict panel on
// 412), History (a ticket's events as a timeline), Health (`/health` and
// `/stats`), Live (`GET /events`: the board and a tail follow it).
'use strict';

(() => {
  const PAGE_LIMIT = 50;
  const TAIL_MAX = 200;
  const REQUEST_TIMEOUT_MS = 30000;
  const TITLE_BYTES_MAX = 50;
  const DESCRIPTION_BYTES_MAX = 500;
  const STATUSES = ['todo', 'in-progress', 'done'];
  const STATUS_LABELS = { todo: 'To do', 'in-progress': 'In progress', done: 'Done' };
  const TOKEN_KEY = 'ticketlog-console-token';
  const RECONNECT_MIN_MS = 500;
  const RECONNECT_MAX_MS = 15000;
  const LAST_INDEX = 4294967295;

  const $ = (id) => document.getElementById(id);
  const utf8 = new TextEncoder();

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || null,
    tickets: new Map(), // id -> ticket, every ticket the page knows
    columns: Object.fromEntries(STATUSES.map((s) => [s, { nextAfter: null, exhausted: false }])),
    counts: null, // the last /stats
    editing: new Map(), // id -> { version, title, description, error }
    confirmingDelete: new Set(),
    cardErrors: new Map(), // id -> message
    conflict: null, // { id, change, current }
    live: { source: null, lastId: null, lastKey: null, retryMs: RECONNECT_MIN_MS, timer: null, abort: null },
    historyId: null,
    view: 'board',
  };

  // ------------------------------------------------------------------ API

  class ApiFailure extends Error {
    constructor(status, code, message, currentVersion) {
      super(message);
      this.status = status;
      this.code = code;
      this.currentVersion = currentVersion;
    }
  }

  function authHeaders() {
    return state.token ? { Authorization: `Bearer ${state.token}` } : {};
  }

  // One request; resolves to the JSON body of a 2xx (or of a status in
  // `accept`), rejects with an ApiFailure carrying the API's error code.
  async function api(method, path, { body, ifMatch, accept = [] } = {}) {
    const headers = { Accept: 'application/json', ...authHeaders() };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (ifMatch !== undefined) headers['If-Match'] = `"${ifMatch}"`;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (error) {
      throw new ApiFailure(0, 'unreachable', `the server did not answer (${error.message})`);
    }
    const text = await response.text().catch(() => '');
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch (_) {
      json = null;
    }
    if (response.status === 401) showTokenPanel();
    if (response.ok || accept.includes(response.status)) {
      hideNotice('unreachable');
      return { status: response.status, json };
    }
    const error = (json && json.error) || { code: `http_${response.status}`, message: text || response.statusText };
    throw new ApiFailure(response.status, error.code, error.message, error.current_version);
  }

  // ------------------------------------------------------------- helpers

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'text') node.textContent = value;
      else if (key === 'className') node.className = value;
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function bytes(text) {
    return utf8.encode(text).length;
  }

  function formatBytes(n) {
    if (n < 1024) return `${n} B`;
    const units = ['KiB', 'MiB', 'GiB', 'TiB'];
    let value = n;
    let unit = -1;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${value.toFixed(1)} ${units[unit]} (${n.toLocaleString('en')} bytes)`;
  }

  function formatTime(text) {
    const date = new Date(text);
    return Number.isNaN(date.getTime()) ? text : date.toISOString().replace('T', ' ').replace('Z', ' UTC');
  }

  let noticeCause = null;
  function showNotice(message, cause = null) {
    const notice = $('notice');
    notice.textContent = message;
    notice.hidden = false;
    noticeCause = cause;
  }

  function hideNotice(cause) {
    if (cause && noticeCause !== cause) return;
    $('notice').hidden = true;
    noticeCause = null;
  }

  function reportFailure(error) {
    if (error instanceof ApiFailure && error.code === 'unreachable') showNotice(error.message, 'unreachable');
    else if (error instanceof ApiFailure && error.status === 401) showNotice('The server needs a token.', 'token');
    else showNotice(error.message || String(error));
  }

  function debounce(fn, ms) {
    let timer = null;
    return () => {
      clearTimeout(timer);
      timer = setTimeout(fn, ms);
    };
  }

  // ---------------------------------------------------------------- token

  function showTokenPanel() {
    $('token-panel').hidden = false;
    $('token-input').focus();
  }

  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('token-input').value.trim();
    if (!token) return;
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token-input').value = '';
    $('token-panel').hidden = true;
    hideNotice('token');
    start();
  });

  // ---------------------------------------------------------------- views

  const tabs = Array.from(document.querySelectorAll('[role="tab"]'));

  function showView(view, { focus = false } = {}) {
    if (!['board', 'history', 'health', 'live'].includes(view)) view = 'board';
    state.view = view;
    for (const tab of tabs) {
      const selected = tab.dataset.view === view;
      tab.setAttribute('aria-selected', String(selected));
      tab.tabIndex = selected ? 0 : -1;
      $(`view-${tab.dataset.view}`).hidden = !selected;
      if (selected && focus) tab.focus();
    }
    if (view === 'health') refreshHealth();
    if (view === 'history' && state.historyId) loadHistory(state.historyId);
  }

  for (const tab of tabs) {
    tab.addEventListener('click', () => {
      location.hash = tab.dataset.view;
    });
    tab.addEventListener('keydown', (event) => {
      const index = tabs.indexOf(tab);
      let next = null;
      if (event.key === 'ArrowRight') next = tabs[(index + 1) % tabs.length];
      else if (event.key === 'ArrowLeft') next = tabs[(index + tabs.length - 1) % tabs.length];
      else if (event.key === 'Home') next = tabs[0];
      else if (event.key === 'End') next = tabs[tabs.length - 1];
      if (next) {
        event.preventDefault();
        location.hash = next.dataset.view;
        next.focus();
      }
    });
  }

  function route() {
    const [view, arg] = location.hash.replace(/^#/, '').split('/');
    if (view === 'history' && arg) {
      state.historyId = arg;
      $('history-id').value = arg;
    }
    showView(view || 'board');
  }
  window.addEventListener('hashchange', route);

  // ---------------------------------------------------------------- board

  function upsert(ticket) {
    const known = state.tickets.get(ticket.id);
    if (known && known.version > ticket.version) return false;
    state.tickets.set(ticket.id, ticket);
    scheduleRender();
    return true;
  }

  function forget(id) {
    state.tickets.delete(id);
    state.editing.delete(id);
    state.confirmingDelete.delete(id);
    state.cardErrors.delete(id);
    scheduleRender();
  }

  async function loadPage(status) {
    const column = state.columns[status];
    const query = new URLSearchParams({ status, limit: String(PAGE_LIMIT) });
    if (column.nextAfter !== null) query.set('after', String(column.nextAfter));
    const { json } = await api('GET', `/tickets?${query}`);
    for (const ticket of json.tickets) upsert(ticket);
    column.nextAfter = json.next_after;
    column.exhausted = json.next_after === null;
    scheduleRender();
  }

  async function loadBoard() {
    for (const status of STATUSES) state.columns[status] = { nextAfter: null, exhausted: false };
    state.tickets.clear();
    await Promise.all(STATUSES.map(loadPage));
    await refreshCounts();
  }

  async function refreshCounts() {
    try {
      const { json } = await api('GET', '/stats');
      state.counts = json;
      scheduleRender();
      return json;
    } catch (error) {
      reportFailure(error);
      return null;
    }
  }
  const refreshCountsSoon = debounce(refreshCounts, 300);

  let renderQueued = false;
  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    setTimeout(() => {
      renderQueued = false;
      renderBoard();
    }, 0);
  }

  const cardNodes = new Map(); // id -> { node, key }

  function cardKey(ticket) {
    const editing = state.editing.get(ticket.id);
    return JSON.stringify([
      ticket.version,
      ticket.status,
      editing ? [editing.version, editing.error] : null,
      state.confirmingDelete.has(ticket.id),
      state.cardErrors.get(ticket.id) || null,
    ]);
  }

  function renderBoard() {
    const byStatus = Object.fromEntries(STATUSES.map((s) => [s, []]));
    for (const ticket of state.tickets.values()) {
      if (byStatus[ticket.status]) byStatus[ticket.status].push(ticket);
    }
    const seen = new Set();
    for (const status of STATUSES) {
      const list = document.querySelector(`[data-list="${status}"]`);
      const tickets = byStatus[status].sort((a, b) => a.id - b.id);
      tickets.forEach((ticket, index) => {
        seen.add(ticket.id);
        const key = cardKey(ticket);
        let entry = cardNodes.get(ticket.id);
        if (!entry || entry.key !== key) {
          const node = renderCard(ticket);
          if (entry) entry.node.replaceWith(node);
          entry = { node, key };
          cardNodes.set(ticket.id, entry);
        }
        if (list.children[index] !== entry.node) list.insertBefore(entry.node, list.children[index] || null);
      });
      while (list.children.length > tickets.length) list.lastElementChild.remove();
      const column = state.columns[status];
      const more = document.querySelector(`[data-more="${status}"]`);
      const total = state.counts ? state.counts[status.replace('-', '_')] : null;
      more.hidden = column.exhausted;
      more.textContent = total === null ? 'Load more' : `Load more (${tickets.length} of ${total} shown)`;
      const count = document.querySelector(`[data-count="${status}"]`);
      count.textContent = total === null ? '' : `(${total})`;
    }
    for (const id of Array.from(cardNodes.keys())) {
      if (!seen.has(id)) {
        cardNodes.get(id).node.remove();
        cardNodes.delete(id);
      }
    }
  }

  function renderCard(ticket) {
    const editing = state.editing.get(ticket.id);
    const item = el('li', {
      className: 'card',
      'data-id': ticket.id,
      'data-version': ticket.version,
      'data-status': ticket.status,
    });
    const article = el('article', { 'aria-label': `Ticket ${ticket.id}: ${ticket.title}`, tabindex: '-1' });
    item.append(article);
    if (editing) {
      article.append(renderEditForm(ticket, editing));
      return item;
    }
    article.append(
      el('p', { className: 'card-title', text: ticket.title }),
      el(
        'p',
        { className: 'card-meta' },
        el('span', { className: 'card-id', text: `#${ticket.id}` }),
        ' ',
        el('span', { className: 'card-version', text: `v${ticket.version}` }),
      ),
      el('p', { className: 'card-description', text: ticket.description }),
    );
    const actions = el('div', { className: 'actions', role: 'group', 'aria-label': `Actions for ticket ${ticket.id}` });
    for (const status of STATUSES) {
      if (status === ticket.status) continue;
      actions.append(
        el('button', {
          type: 'button',
          'data-action': 'move',
          'data-to': status,
          'aria-label': `Move ticket ${ticket.id} to ${STATUS_LABELS[status]}`,
          text: `→ ${STATUS_LABELS[status]}`,
        }),
      );
    }
    actions.append(
      el('button', { type: 'button', 'data-action': 'edit', 'aria-label': `Edit ticket ${ticket.id}`, text: 'Edit' }),
      el('button', { type: 'button', 'data-action': 'history', 'aria-label': `History of ticket ${ticket.id}`, text: 'History' }),
      state.confirmingDelete.has(ticket.id)
        ? el('button', { type: 'button', className: 'danger', 'data-action': 'delete-confirm', text: 'Really delete?' })
        : el('button', { type: 'button', 'data-action': 'delete', 'aria-label': `Delete ticket ${ticket.id}`, text: 'Delete' }),
    );
    article.append(actions);
    const error = state.cardErrors.get(ticket.id);
    article.append(el('p', { className: 'card-error', role: 'alert', text: error || '' }));
    return item;
  }

  function renderEditForm(ticket, editing) {
    const form = el('form', { className: 'edit', novalidate: true, autocomplete: 'off', 'data-edit': ticket.id });
    const titleId = `edit-title-${ticket.id}`;
    const descriptionId = `edit-description-${ticket.id}`;
    const title = el('input', { id: titleId, name: 'title', type: 'text' });
    title.value = editing.title;
    const description = el('textarea', { id: descriptionId, name: 'description', rows: '3' });
    description.value = editing.description;
    title.addEventListener('input', () => {
      editing.title = title.value;
    });
    description.addEventListener('input', () => {
      editing.description = description.value;
    });
    form.append(
      el('p', { className: 'card-meta', text: `Editing #${ticket.id}, from version ${editing.version}` }),
      el('label', { for: titleId, text: 'Title' }),
      title,
      el('label', { for: descriptionId, text: 'Description' }),
      description,
      el('p', { className: 'field-error', role: 'alert', text: editing.error || '' }),
      el(
        'div',
        { className: 'actions' },
        el('button', { type: 'submit', text: 'Save' }),
        el('button', { type: 'button', 'data-action': 'edit-cancel', text: 'Cancel' }),
      ),
    );
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      saveEdit(ticket.id);
    });
    form.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') cancelEdit(ticket.id);
    });
    return form;
  }

  function focusCard(id, selector = 'article') {
    setTimeout(() => {
      const target = document.querySelector(`.card[data-id="${id}"] ${selector}`);
      if (target) target.focus();
    }, 0);
  }

  // A change to a ticket, sent with If-Match: the version it was made from.
  async function sendChange(id, change, fromVersion) {
    state.cardErrors.delete(id);
    try {
      if (change.delete) {
        await api('DELETE', `/tickets/${id}`, { ifMatch: fromVersion });
        forget(id);
      } else {
        const { json } = await api('PATCH', `/tickets/${id}`, { body: change.patch, ifMatch: fromVersion });
        state.editing.delete(id);
        upsert(json);
      }
      refreshCountsSoon();
      return true;
    } catch (error) {
      if (error.status === 412) {
        await showConflict(id, change, fromVersion);
      } else if (error.status === 404) {
        forget(id);
        showNotice(`Ticket ${id} no longer exists: someone deleted it.`);
      } else if (error.status === 422 && state.editing.has(id)) {
        state.editing.get(id).error = error.message;
        scheduleRender();
      } else {
        state.cardErrors.set(id, error.message);
        scheduleRender();
      }
      return false;
    }
  }

  async function moveTicket(id, to) {
    const ticket = state.tickets.get(id);
    if (!ticket) return;
    if (await sendChange(id, { patch: { status: to } }, ticket.version)) {
      focusCard(id);
    }
  }

  function startEdit(id) {
    const ticket = state.tickets.get(id);
    if (!ticket) return;
    state.editing.set(id, { version: ticket.version, title: ticket.title, description: ticket.description, error: null });
    scheduleRender();
    focusCard(id, 'input[name="title"]');
  }

  function cancelEdit(id) {
    state.editing.delete(id);
    scheduleRender();
    focusCard(id);
  }

  async function saveEdit(id) {
    const editing = state.editing.get(id);
    const ticket = state.tickets.get(id);
    if (!editing || !ticket) return;
    const patch = {};
    if (editing.title !== ticket.title) patch.title = editing.title;
    if (editing.description !== ticket.description) patch.description = editing.description;
    if (Object.keys(patch).length === 0) {
      cancelEdit(id);
      return;
    }
    if (await sendChange(id, { patch }, editing.version)) focusCard(id);
  }

  // --------------------------------------------------------------- conflict

  async function showConflict(id, change, fromVersion) {
    let current = null;
    try {
      current = (await api('GET', `/tickets/${id}`)).json;
    } catch (error) {
      if (error.status === 404) {
        forget(id);
        showNotice(`Ticket ${id} was deleted by someone else; your change was not applied.`);
        return;
      }
      reportFailure(error);
      return;
    }
    upsert(current);
    state.editing.delete(id);
    state.conflict = { id, change, current };
    $('conflict-text').textContent =
      `Ticket #${id} was at version ${fromVersion} when you changed it; it is now at version ${current.version}. ` +
      'Nothing was overwritten. Compare, then apply your change to the current version or discard it.';
    const currentList = $('conflict-current');
    currentList.replaceChildren(...describeTicket(current));
    $('conflict-yours').replaceChildren(...describeChange(change));
    $('conflict-version').textContent = String(current.version);
    $('conflict').dataset.ticket = String(id);
    $('conflict').dataset.version = String(current.version);
    $('conflict').hidden = false;
    $('conflict-retry').focus();
  }

  function describeTicket(ticket) {
    return [
      el('dt', { text: 'Title' }), el('dd', { text: ticket.title }),
      el('dt', { text: 'Description' }), el('dd', { text: ticket.description }),
      el('dt', { text: 'Status' }), el('dd', { text: STATUS_LABELS[ticket.status] || ticket.status }),
      el('dt', { text: 'Version' }), el('dd', { 'data-key': 'version', text: String(ticket.version) }),
    ];
  }

  function describeChange(change) {
    if (change.delete) return [el('dt', { text: 'Delete' }), el('dd', { text: 'the ticket' })];
    const rows = [];
    for (const [field, value] of Object.entries(change.patch)) {
      rows.push(el('dt', { text: field[0].toUpperCase() + field.slice(1) }));
      rows.push(el('dd', { text: field === 'status' ? STATUS_LABELS[value] : value }));
    }
    return rows;
  }

  function closeConflict() {
    const conflict = state.conflict;
    state.conflict = null;
    $('conflict').hidden = true;
    if (conflict) focusCard(conflict.id);
  }

  $('conflict-retry').addEventListener('click', async () => {
    const conflict = state.conflict;
    if (!conflict) return;
    $('conflict').hidden = true;
    state.conflict = null;
    if (await sendChange(conflict.id, conflict.change, conflict.current.version)) {
      if (state.tickets.has(conflict.id)) focusCard(conflict.id);
    }
  });
  $('conflict-discard').addEventListener('click', closeConflict);
  $('conflict').addEventListener('keydown', (event) => {
    if (event.key === 'Escape') closeConflict();
  });

  // ------------------------------------------------------------ board events

  $('board').addEventListener('click', (event) => {
    const button = event.target.closest('button[data-action]');
    const more = event.target.closest('button[data-more]');
    if (more) {
      more.disabled = true;
      loadPage(more.dataset.more)
        .catch(reportFailure)
        .finally(() => {
          more.disabled = false;
        });
      return;
    }
    if (!button) return;
    const card = button.closest('.card');
    const id = Number(card.dataset.id);
    const action = button.dataset.action;
    if (action === 'move') moveTicket(id, button.dataset.to);
    else if (action === 'edit') startEdit(id);
    else if (action === 'edit-cancel') cancelEdit(id);
    else if (action === 'history') location.hash = `history/${id}`;
    else if (action === 'delete') {
      state.confirmingDelete.add(id);
      scheduleRender();
      focusCard(id, 'button[data-action="delete-confirm"]');
      setTimeout(() => {
        if (state.confirmingDelete.delete(id)) scheduleRender();
      }, 5000);
    } else if (action === 'delete-confirm') {
      state.confirmingDelete.delete(id);
      const ticket = state.tickets.get(id);
      if (ticket) sendChange(id, { delete: true }, ticket.version);
    }
  });

  // ----------------------------------------------------------------- create

  function updateCount(input, counter, max) {
    const n = bytes(input.value);
    counter.textContent = `${n} / ${max} bytes`;
    counter.classList.toggle('over', n > max);
  }

  $('create-title').addEventListener('input', () =>
    updateCount($('create-title'), $('create-title-count'), TITLE_BYTES_MAX),
  );
  $('create-description').addEventListener('input', () =>
    updateCount($('create-description'), $('create-description-count'), DESCRIPTION_BYTES_MAX),
  );

  function setCreateErrors({ title = '', description = '', form = '' }) {
    $('create-title-error').textContent = title;
    $('create-description-error').textContent = description;
    $('create-error').textContent = form;
    $('create-title').setAttribute('aria-invalid', String(Boolean(title)));
    $('create-description').setAttribute('aria-invalid', String(Boolean(description)));
  }

  $('create-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const submit = $('create-submit');
    const title = $('create-title').value;
    const description = $('create-description').value;
    submit.disabled = true;
    setCreateErrors({});
    try {
      const { json } = await api('POST', '/tickets', { body: { title, description } });
      upsert(json);
      $('create-title').value = '';
      $('create-description').value = '';
      updateCount($('create-title'), $('create-title-count'), TITLE_BYTES_MAX);
      updateCount($('create-description'), $('create-description-count'), DESCRIPTION_BYTES_MAX);
      refreshCountsSoon();
      $('create-title').focus();
    } catch (error) {
      // The API's own message, next to the field it is about.
      const message = error.message || String(error);
      if (error.status === 422 && /\btitle is\b/i.test(message)) {
        setCreateErrors({ title: message });
        $('create-title').focus();
      } else if (error.status === 422 && /\bdescription is\b/i.test(message)) {
        setCreateErrors({ description: message });
        $('create-description').focus();
      } else {
        setCreateErrors({ form: message });
      }
    } finally {
      submit.disabled = false;
    }
  });

  // ---------------------------------------------------------------- history

  $('history-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const id = $('history-id').value.trim();
    location.hash = `history/${id}`;
    if (state.historyId === id) loadHistory(id);
  });

  async function loadHistory(id) {
    state.historyId = id;
    $('history-error').textContent = '';
    const list = $('history-list');
    let history;
    try {
      history = (await api('GET', `/tickets/${encodeURIComponent(id)}/history`)).json;
    } catch (error) {
      list.replaceChildren();
      $('history-summary').textContent = '';
      $('history-error').textContent = error.message;
      return;
    }
    if (String(state.historyId) !== String(id)) return;
    $('history-summary').textContent =
      `Ticket #${history.ticket_id}: ${history.events.length} event${history.events.length === 1 ? '' : 's'}, oldest first` +
      (history.complete ? '.' : ` (the log was compacted: history starts at LSN ${history.first_lsn}, so old values before it are unknown).`);
    const known = {};
    const items = history.events.map((event) => {
      const changes = el('ul', { className: 'changes' });
      const fields = ['title', 'description', 'status'];
      if (event.type === 'created') {
        known.title = event.title;
        known.description = event.description;
        known.status = 'todo';
        for (const field of fields) changes.append(el('li', {}, el('span', { className: 'field', text: field }), ': ', el('span', { className: 'new', text: showValue(field, known[field]) })));
      } else if (event.type === 'updated') {
        for (const field of fields) {
          if (event[field] === undefined) continue;
          const old = known[field];
          changes.append(
            el(
              'li',
              {},
              el('span', { className: 'field', text: field }),
              ': ',
              el('span', { className: 'old', text: old === undefined ? '(unknown)' : showValue(field, old) }),
              ' → ',
              el('span', { className: 'new', text: showValue(field, event[field]) }),
            ),
          );
          known[field] = event[field];
        }
      } else if (event.type === 'deleted') {
        changes.append(el('li', { text: `deleted at version ${event.version}` }));
      }
      return el(
        'li',
        { className: `event event-${event.type}`, 'data-lsn': event.lsn, 'data-version': event.version, 'data-type': event.type },
        el(
          'p',
          { className: 'event-head' },
          el('span', { className: 'event-type', text: event.type }),
          ' ',
          el('span', { className: 'event-lsn', text: `LSN ${event.lsn}` }),
          ' · ',
          el('span', { className: 'event-version', text: `v${event.version}` }),
          ' · ',
          el('time', { datetime: event.at, text: formatTime(event.at) }),
        ),
        changes,
      );
    });
    list.replaceChildren(...items);
  }

  function showValue(field, value) {
    return field === 'status' ? STATUS_LABELS[value] || value : JSON.stringify(value);
  }

  // ----------------------------------------------------------------- health

  function row(key, label, value) {
    return [el('dt', { text: label }), el('dd', { 'data-key': key, text: value })];
  }

  async function refreshHealth() {
    $('health-error').textContent = '';
    let health;
    let stats;
    try {
      [health, stats] = await Promise.all([
        api('GET', '/health', { accept: [503] }).then((r) => r.json),
        api('GET', '/stats').then((r) => r.json),
      ]);
    } catch (error) {
      $('health-error').textContent = error.message;
      return;
    }
    state.counts = stats;
    scheduleRender();
    const refusing = health.status !== 'ok';
    $('health-store').replaceChildren(
      ...row('writes', 'Writes', refusing ? `refused: ${health.reason || 'the store failed in storage'}` : 'accepted'),
      ...row('durability', 'Durability', health.durability || '(not reported)'),
      ...row('retention', 'Retention', health.retention || '(not reported)'),
      ...row('last_lsn', 'Last LSN', stats.last_lsn === undefined ? '(not reported)' : String(stats.last_lsn)),
      ...row('tickets', 'Tickets', String(stats.tickets)),
      ...row('todo', 'To do', String(stats.todo)),
      ...row('in_progress', 'In progress', String(stats.in_progress)),
      ...row('done', 'Done', String(stats.done)),
      ...row('next_id', 'Next id', String(stats.next_id)),
      ...row('records', 'Records in the log', String(stats.records)),
      ...row('log_bytes', 'Log size', formatBytes(stats.log_bytes)),
    );
    $('view-health').dataset.writes = refusing ? 'refused' : 'accepted';
    const recovery = health.recovery;
    if (!recovery) {
      $('health-recovery').replaceChildren(...row('recovery', 'Report', '(not reported by this server)'));
      return;
    }
    const torn = recovery.torn_tail;
    const snapshot = recovery.snapshot;
    $('health-recovery').replaceChildren(
      ...row('torn_tail', 'Torn tail', torn ? `cut ${torn.bytes} bytes at byte ${torn.offset}: ${torn.damage}` : 'none: the log ended cleanly'),
      ...row('snapshot', 'Snapshot used', snapshot ? `${snapshot.file}: LSN ${snapshot.lsn}, ${snapshot.tickets} tickets, ${formatBytes(snapshot.bytes)}` : 'none: the whole log was replayed'),
      ...row('snapshots_rejected', 'Snapshots rejected', recovery.snapshots_rejected.length === 0 ? 'none' : recovery.snapshots_rejected.map((r) => `${r.file} at byte ${r.offset}: ${r.damage}`).join('; ')),
      ...row('records_replayed', 'Records replayed', String(recovery.records_replayed)),
      ...row('log_bytes_at_open', 'Log size at open', formatBytes(recovery.log_bytes)),
      ...row('segments', 'Segments at open', String(recovery.segments)),
      ...row('history_starts_at_lsn', 'History starts at LSN', String(recovery.history_starts_at_lsn)),
    );
  }
  const refreshHealthSoon = debounce(() => {
    if (state.view === 'health') refreshHealth();
  }, 300);
  $('health-refresh').addEventListener('click', refreshHealth);

  // ------------------------------------------------------------------- live

  function setLiveState(name, detail) {
    const indicator = $('live-state');
    indicator.dataset.state = name;
    indicator.textContent = `live: ${name}`;
    $('live-detail').textContent = detail;
  }

  // "<lsn>.<index>" as numbers, for ordering positions.
  function positionKey(id) {
    const [lsn, index] = String(id).split('.');
    return [Number(lsn) || 0, Number(index) || 0];
  }

  function isAfter(a, b) {
    return a[0] > b[0] || (a[0] === b[0] && a[1] > b[1]);
  }

  function onLiveEvent(type, id, data) {
    let event;
    try {
      event = JSON.parse(data);
    } catch (_) {
      return;
    }
    if (id) {
      const key = positionKey(id);
      // A resume may repeat the position it resumed from: skip what was seen.
      if (state.live.lastKey && !isAfter(key, state.live.lastKey)) return;
      state.live.lastKey = key;
      state.live.lastId = id;
    }
    state.live.retryMs = RECONNECT_MIN_MS;
    applyEvent(type || event.type, event);
    appendTail(type || event.type, id, event);
    refreshCountsSoon();
    refreshHealthSoon();
    if (state.view === 'history' && String(event.ticket_id) === String(state.historyId)) loadHistory(state.historyId);
  }

  function applyEvent(type, event) {
    const id = event.ticket_id;
    const known = state.tickets.get(id);
    if (type === 'deleted') {
      if (known && known.version <= event.version) forget(id);
      return;
    }
    if (type === 'created') {
      upsert({
        id,
        title: event.title,
        description: event.description,
        status: 'todo',
        version: event.version,
        created_at: event.at,
        updated_at: event.at,
      });
      return;
    }
    if (type === 'updated') {
      if (known && known.version >= event.version) return;
      if (known && known.version === event.version - 1) {
        const next = { ...known, version: event.version, updated_at: event.at };
        for (const field of ['title', 'description', 'status']) if (event[field] !== undefined) next[field] = event[field];
        upsert(next);
        return;
      }
      // Not known, or an event was missed: ask for the ticket itself.
      api('GET', `/tickets/${id}`)
        .then(({ json }) => upsert(json))
        .catch((error) => {
          if (error.status === 404) forget(id);
        });
    }
  }

  function appendTail(type, id, event) {
    const tail = $('tail');
    const summary = [];
    for (const field of ['title', 'description', 'status']) {
      if (event[field] !== undefined) summary.push(`${field}=${JSON.stringify(event[field])}`);
    }
    tail.prepend(
      el(
        'li',
        { className: `event event-${type}`, 'data-position': id || '', 'data-type': type, 'data-ticket': event.ticket_id },
        el('span', { className: 'event-type', text: type }),
        ` #${event.ticket_id} v${event.version} `,
        el('span', { className: 'event-lsn', text: `@${id || event.lsn}` }),
        ` ${summary.join(' ')} `,
        el('time', { datetime: event.at, text: formatTime(event.at) }),
      ),
    );
    while (tail.children.length > TAIL_MAX) tail.lastElementChild.remove();
  }

  function eventsUrl() {
    const query = new URLSearchParams();
    // `from` is the position to start after; EventSource's own reconnects
    // send Last-Event-ID, which the server prefers.
    if (state.live.lastId) query.set('from', state.live.lastId);
    else if (state.live.startAfter) query.set('from', state.live.startAfter);
    const text = query.toString();
    return text ? `/events?${text}` : '/events';
  }

  function stopLive() {
    clearTimeout(state.live.timer);
    if (state.live.source) state.live.source.close();
    if (state.live.abort) state.live.abort.abort();
    state.live.source = null;
    state.live.abort = null;
  }

  function scheduleReconnect(reason) {
    stopLive();
    const delay = state.live.retryMs;
    state.live.retryMs = Math.min(delay * 2, RECONNECT_MAX_MS);
    setLiveState('reconnecting', `${reason}; trying again in ${Math.round(delay / 100) / 10} s.`);
    state.live.timer = setTimeout(connectLive, delay);
  }

  // Why a stream could not be opened: 501 (the server has no event stream)
  // is not retried quickly.
  async function diagnose() {
    try {
      const response = await fetch(eventsUrl(), {
        headers: { Accept: 'text/event-stream', ...authHeaders() },
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      const status = response.status;
      if (response.body) response.body.cancel().catch(() => {});
      return status;
    } catch (_) {
      return 0;
    }
  }

  function connectLive() {
    stopLive();
    setLiveState('connecting', 'Opening GET /events…');
    if (state.token) {
      connectLiveByFetch();
      return;
    }
    const source = new EventSource(eventsUrl());
    state.live.source = source;
    source.onopen = () => {
      state.live.retryMs = RECONNECT_MIN_MS;
      setLiveState('on', 'Following GET /events: the board and this list update as events commit.');
      hideNotice('unreachable');
    };
    for (const type of ['created', 'updated', 'deleted']) {
      source.addEventListener(type, (message) => onLiveEvent(type, message.lastEventId, message.data));
    }
    source.onerror = async () => {
      if (source !== state.live.source) return;
      if (source.readyState === EventSource.CONNECTING) {
        // Reconnect ourselves rather than let the browser reuse the first
        // URL: the new one says `from=` the last event seen, so the resume
        // is exact whether or not the browser sends Last-Event-ID.
        scheduleReconnect('The event stream dropped');
        return;
      }
      source.close();
      const status = await diagnose();
      if (source !== state.live.source) return;
      if (status === 501) {
        state.live.retryMs = RECONNECT_MAX_MS;
        scheduleReconnect('This server has no event stream yet (GET /events answers 501)');
        setLiveState('unavailable', 'This server has no event stream (GET /events answers 501): reload to see changes by others.');
      } else if (status === 401) {
        showTokenPanel();
        setLiveState('off', 'The event stream needs the token.');
      } else {
        scheduleReconnect(status ? `GET /events answered ${status}` : 'The server did not answer');
      }
    };
  }

  // With a token: EventSource cannot send an Authorization header, so the
  // stream is read with fetch, parsed here, and resumed with Last-Event-ID.
  async function connectLiveByFetch() {
    const abort = new AbortController();
    state.live.abort = abort;
    const headers = { Accept: 'text/event-stream', ...authHeaders() };
    if (state.live.lastId) headers['Last-Event-ID'] = state.live.lastId;
    let response;
    try {
      response = await fetch(eventsUrl(), { headers, signal: abort.signal, cache: 'no-store' });
    } catch (_) {
      if (state.live.abort === abort) scheduleReconnect('The server did not answer');
      return;
    }
    if (!response.ok || !response.body) {
      if (response.status === 401) showTokenPanel();
      if (response.status === 501) state.live.retryMs = RECONNECT_MAX_MS;
      scheduleReconnect(`GET /events answered ${response.status}`);
      if (response.status === 501) setLiveState('unavailable', 'This server has no event stream (GET /events answers 501).');
      return;
    }
    state.live.retryMs = RECONNECT_MIN_MS;
    setLiveState('on', 'Following GET /events (read with fetch, since a token is set).');
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let message = { id: null, event: null, data: [] };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let newline;
        while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
          if (line === '') {
            if (message.data.length > 0) onLiveEvent(message.event, message.id, message.data.join('\n'));
            message = { id: null, event: null, data: [] };
            continue;
          }
          if (line.startsWith(':')) continue; // a heartbeat comment
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? '' : line.slice(colon + 1);
          if (text.startsWith(' ')) text = text.slice(1);
          if (field === 'id') message.id = text;
          else if (field === 'event') message.event = text;
          else if (field === 'data') message.data.push(text);
        }
        if (buffer.length > 1 << 20) break; // a line this long is not ours
      }
    } catch (_) {
      // The connection ended (server restart, network): resume below.
    }
    if (state.live.abort === abort) scheduleReconnect('The event stream ended');
  }

  // ------------------------------------------------------------------ start

  async function start() {
    let stats = null;
    try {
      stats = (await api('GET', '/stats')).json;
    } catch (error) {
      reportFailure(error);
      if (error.status === 401) return;
    }
    // Follow events from just after what the board is about to show: the
    // position after every event of the record at last_lsn (an event's
    // index within its record is a u32).
    if (stats && stats.last_lsn > 0 && !state.live.lastId) state.live.startAfter = `${stats.last_lsn}.${LAST_INDEX}`;
    // The board first, then the stream from the position read before it:
    // nothing is missed, and an event the board already shows is skipped by
    // its version.
    try {
      await loadBoard();
    } catch (error) {
      reportFailure(error);
    }
    connectLive();
    route();
  }

  window.addEventListener('online', () => {
    if (!state.live.source && !state.live.abort) connectLive();
  });

  route();
  start();
})();

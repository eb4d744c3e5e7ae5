// The console of `ticketlog serve` in a real browser: headless Chromium
// (Debian's `chromium`, never a downloaded one) driven by playwright-core,
// against the real binary on 127.0.0.1 with port 0, while another client
// changes the store over plain HTTP. Every wait is bounded.
//
//   TICKETLOG_BIN  the binary (default: target/debug/ticketlog)
//   CHROMIUM       the browser (default: /usr/bin/chromium)
//   SCREENSHOT_DIR where the board's screenshot goes (default: target/)
//
// Run with tests/browser/run.sh (or `npm test` here after `npm ci`).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const BIN = process.env.TICKETLOG_BIN || path.join(repo, 'target', 'debug', 'ticketlog');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || path.join(repo, 'target');

/** The longest any single step may take (a hang becomes a failure). */
const STEP_MS = 15_000;
/** The longest one test may take. */
const TEST_MS = 90_000;

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let browser;
const scratch = mkdtempSync(path.join(tmpdir(), 'ticketlog-console-'));

before(async () => {
  // playwright-core gives each launch a fresh, empty profile directory.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: STEP_MS * 2,
  });
});

after(async () => {
  if (browser) await browser.close();
  rmSync(scratch, { recursive: true, force: true });
});

// ------------------------------------------------------------------ server

const servers = new Set();
process.on('exit', () => {
  for (const server of servers) server.child.kill('SIGKILL');
});

/** Starts `ticketlog --dir DIR serve --listen LISTEN EXTRA…`; resolves once it printed its address. */
function startServer(dir, { listen = '127.0.0.1:0', extra = [] } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, ['--dir', dir, 'serve', '--listen', listen, ...extra], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TICKETLOG_DIR: '', TICKETLOG_SERVER: '' },
    });
    const server = { child, url: null, port: null, stderr: '', exited: null };
    servers.add(server);
    let stdout = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`serve printed no address within ${STEP_MS} ms; stderr: ${server.stderr}`));
    }, STEP_MS);
    child.stderr.on('data', (chunk) => {
      server.stderr += chunk;
    });
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      const match = stdout.match(/listening on (http:\/\/[^\s]+)/);
      if (match && !server.url) {
        clearTimeout(timer);
        server.url = match[1];
        server.port = Number(new URL(server.url).port);
        resolve(server);
      }
    });
    server.exited = new Promise((done) => child.on('exit', (code, signal) => done({ code, signal })));
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    server.exited.then(({ code, signal }) => {
      servers.delete(server);
      if (!server.url) {
        clearTimeout(timer);
        reject(new Error(`serve exited (${code ?? signal}) before printing its address: ${server.stderr}`));
      }
    });
  });
}

/** SIGTERM, then waits (bounded) for a clean exit. */
async function stopServer(server) {
  server.child.kill('SIGTERM');
  const outcome = await Promise.race([
    server.exited,
    new Promise((resolve) => setTimeout(() => resolve(null), STEP_MS)),
  ]);
  if (outcome === null) {
    server.child.kill('SIGKILL');
    assert.fail(`serve did not stop within ${STEP_MS} ms of SIGTERM`);
  }
  assert.equal(outcome.code, 0, `serve exited with ${outcome.code ?? outcome.signal}: ${server.stderr}`);
}

function newDir(name) {
  const dir = path.join(scratch, `${name}-${Date.now()}-${Math.random().toString(16).slice(2)}`);
  mkdirSync(dir, { recursive: true });
  return path.join(dir, 'data');
}

// ------------------------------------------------------------------- HTTP

/** Another client: plain HTTP, as curl would send it. */
async function http(server, method, route, { body, headers = {} } = {}) {
  const response = await fetch(server.url + route, {
    method,
    headers: { ...(body === undefined ? {} : { 'Content-Type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(STEP_MS),
  });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : null, headers: response.headers };
}

async function eventsAvailable(server) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), STEP_MS);
  try {
    const response = await fetch(`${server.url}/events`, { signal: controller.signal });
    const ok = response.ok && (response.headers.get('content-type') || '').startsWith('text/event-stream');
    controller.abort();
    return ok;
  } catch (_) {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

// ------------------------------------------------------------------- page

/** A fresh page on the console; fails the test on any script error or CSP violation. */
async function openConsole(server, { hash = '', viewport, withoutEvents = false } = {}) {
  const context = await browser.newContext(viewport ? { viewport } : {});
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  // A page whose event stream cannot connect (a proxy that drops it, a
  // network that breaks): it learns of other clients' changes only from
  // its own requests, as a page with a stale view must.
  if (withoutEvents) await page.route('**/events**', (route) => route.abort('connectionreset'));
  page.problems = [];
  page.on('pageerror', (error) => page.problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) page.problems.push(`CSP: ${message.text()}`);
  });
  await page.goto(`${server.url}/${hash}`, { timeout: STEP_MS });
  return page;
}

async function closeConsole(page) {
  const problems = page.problems;
  await page.context().close();
  assert.deepEqual(problems, [], 'the page had script errors or CSP violations');
}

const column = (page, status) => page.locator(`[data-list="${status}"]`);
const card = (page, id) => page.locator(`.card[data-id="${id}"]`);

async function createInPage(page, title, description) {
  await page.fill('#create-title', title);
  await page.fill('#create-description', description);
  await page.click('#create-submit');
}

// ------------------------------------------------------------------ tests

test('a ticket created in the page appears in To do; a too-long title shows the error and writes nothing', { timeout: TEST_MS }, async () => {
  const server = await startServer(newDir('create'));
  const page = await openConsole(server);
  try {
    await createInPage(page, 'Write the console', 'Board, history, health, live');
    const created = column(page, 'todo').locator('.card', { hasText: 'Write the console' });
    await created.waitFor();
    assert.equal(await created.getAttribute('data-id'), '1');
    assert.equal(await created.locator('.card-version').textContent(), 'v1');
    assert.equal(await created.locator('.card-id').textContent(), '#1');

    const before = (await http(server, 'GET', '/stats')).json;
    // 51 bytes in 17 characters: the limit is in bytes, not characters.
    const tooLong = 'é'.repeat(17) + 'xxxxxxxxxxxxxxxxx';
    await createInPage(page, tooLong, 'd');
    const error = page.locator('#create-title-error');
    await error.waitFor({ state: 'visible' });
    assert.match(await error.textContent(), /title is 51 bytes long: it must be at most 50 bytes/);
    assert.equal(await page.locator('#create-title').getAttribute('aria-invalid'), 'true');
    assert.match(await page.locator('#create-title-count').textContent(), /51 \/ 50 bytes/);
    await createInPage(page, '', 'd');
    await page.locator('#create-title-error', { hasText: 'title is empty' }).waitFor();
    await createInPage(page, 'ok', '');
    await page.locator('#create-description-error', { hasText: 'description is empty' }).waitFor();
    const afterRejects = (await http(server, 'GET', '/stats')).json;
    assert.deepEqual(afterRejects, before, 'a rejected create changed the store');
    assert.equal(await page.locator('.card').count(), 1);

    // Keyboard only: type, Tab, type, Enter; then move it with Enter on a button.
    await page.locator('#create-title').fill('');
    await page.locator('#create-description').fill('');
    await page.focus('#create-title');
    await page.keyboard.type('By keyboard');
    await page.keyboard.press('Tab');
    await page.keyboard.type('no mouse');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await column(page, 'todo').locator('.card', { hasText: 'By keyboard' }).waitFor();
    await card(page, 2).locator('button[data-action="move"][data-to="in-progress"]').focus();
    await page.keyboard.press('Enter');
    await column(page, 'in-progress').locator('.card[data-id="2"][data-version="2"]').waitFor();
    assert.equal((await http(server, 'GET', '/tickets/2')).json.status, 'in-progress');
  } finally {
    await closeConsole(page);
    await stopServer(server);
  }
});

test('moving to Done while another client changed the ticket shows the conflict and the current version; the retry works', { timeout: TEST_MS }, async () => {
  const server = await startServer(newDir('conflict'));
  const created = await http(server, 'POST', '/tickets', { body: { title: 'Contested', description: 'two writers' } });
  assert.equal(created.status, 201);
  // With the live stream the card would move to version 2 before the click;
  // a conflict needs a page that has not heard of the other change yet.
  const page = await openConsole(server, { withoutEvents: true });
  try {
    await card(page, 1).waitFor();
    assert.equal(await card(page, 1).getAttribute('data-version'), '1');
    // The other client changes it after the page loaded it.
    const other = await http(server, 'PATCH', '/tickets/1', {
      body: { title: 'Contested (renamed elsewhere)' },
      headers: { 'If-Match': '"1"' },
    });
    assert.equal(other.status, 200);
    assert.equal(other.json.version, 2);

    await card(page, 1).locator('button[data-action="move"][data-to="done"]').click();
    const conflict = page.locator('#conflict');
    await conflict.waitFor({ state: 'visible' });
    assert.match(await page.locator('#conflict-text').textContent(), /was at version 1 .* now at version 2/);
    assert.equal(await page.locator('#conflict-current dd[data-key="version"]').textContent(), '2');
    assert.match(await page.locator('#conflict-current').textContent(), /Contested \(renamed elsewhere\)/);
    assert.match(await page.locator('#conflict-yours').textContent(), /Done/);
    // Nothing was overwritten: the store still has the other client's change and status.
    const meanwhile = (await http(server, 'GET', '/tickets/1')).json;
    assert.deepEqual([meanwhile.version, meanwhile.status, meanwhile.title], [2, 'todo', 'Contested (renamed elsewhere)']);
    // The card now shows the current version.
    await page.locator('.card[data-id="1"][data-version="2"]').waitFor();

    await page.click('#conflict-retry');
    await conflict.waitFor({ state: 'hidden' });
    await column(page, 'done').locator('.card[data-id="1"][data-version="3"]').waitFor();
    const final = (await http(server, 'GET', '/tickets/1')).json;
    assert.deepEqual([final.version, final.status, final.title], [3, 'done', 'Contested (renamed elsewhere)']);

    // An edit from a stale version is refused the same way, and discarding keeps the store's.
    await http(server, 'PATCH', '/tickets/1', { body: { description: 'changed again' }, headers: { 'If-Match': '"3"' } });
    await card(page, 1).locator('button[data-action="edit"]').click();
    await card(page, 1).locator('input[name="title"]').fill('Mine');
    await card(page, 1).locator('button[type="submit"]').click();
    await conflict.waitFor({ state: 'visible' });
    assert.equal(await page.locator('#conflict-current dd[data-key="version"]').textContent(), '4');
    await page.click('#conflict-discard');
    await conflict.waitFor({ state: 'hidden' });
    assert.equal((await http(server, 'GET', '/tickets/1')).json.title, 'Contested (renamed elsewhere)');

    // Delete sends If-Match too.
    await card(page, 1).locator('button[data-action="delete"]').click();
    await card(page, 1).locator('button[data-action="delete-confirm"]').click();
    await card(page, 1).waitFor({ state: 'detached' });
    assert.equal((await http(server, 'GET', '/tickets/1')).status, 404);
  } finally {
    await closeConsole(page);
    await stopServer(server);
  }
});

test('a ticket created by another client appears without a reload (GET /events)', { timeout: TEST_MS }, async (t) => {
  const server = await startServer(newDir('live'));
  try {
    assert.ok(await eventsAvailable(server), 'GET /events must answer a text/event-stream');
    const page = await openConsole(server, { hash: '#live' });
    try {
      await page.locator('#live-state[data-state="on"]').waitFor();
      const other = await http(server, 'POST', '/tickets', { body: { title: 'From elsewhere', description: 'curl' } });
      assert.equal(other.status, 201);
      await page.locator('#tail .event[data-type="created"][data-ticket="1"]').waitFor();
      await page.click('#tab-board');
      await column(page, 'todo').locator('.card[data-id="1"]', { hasText: 'From elsewhere' }).waitFor();
      await http(server, 'PATCH', '/tickets/1', { body: { status: 'done' } });
      await column(page, 'done').locator('.card[data-id="1"][data-version="2"]').waitFor();
    } finally {
      await closeConsole(page);
    }
  } finally {
    await stopServer(server);
  }
});

test('the Live view follows the SSE format of GET /events (stubbed in the page) and resumes with Last-Event-ID', { timeout: TEST_MS }, async () => {
  // The page against the documented stream (issue 10: `id:` "<lsn>.<index>",
  // `event:` created/updated/deleted, `data:` the event JSON, comments as
  // heartbeats), whatever this build's server does with GET /events.
  const server = await startServer(newDir('stub'));
  await http(server, 'POST', '/tickets', { body: { title: 'Known', description: 'd' } });
  const context = await browser.newContext();
  const requests = [];
  const frame = (id, type, data) => `id: ${id}\nevent: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
  const at = '2026-01-01T00:00:00.000Z';
  const created = { type: 'created', lsn: 2, ticket_id: 2, version: 1, at, title: 'Streamed', description: 'over SSE' };
  const updated = { type: 'updated', lsn: 3, ticket_id: 1, version: 2, at, status: 'done' };
  const deleted = { type: 'deleted', lsn: 4, ticket_id: 2, version: 1, at };
  await context.route('**/events*', async (route) => {
    const request = route.request();
    requests.push({ url: request.url(), lastEventId: (await request.allHeaders())['last-event-id'] || null });
    let body = 'retry: 100\n: heartbeat\n\n';
    if (requests.length === 1) body += frame('2.0', 'created', created) + frame('3.0', 'updated', updated);
    // The resume repeats the event it resumed after: the page must skip it.
    else if (requests.length === 2) body += frame('3.0', 'updated', updated) + frame('4.0', 'deleted', deleted);
    else body = 'retry: 5000\n: heartbeat\n\n';
    await route.fulfill({ status: 200, headers: { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store' }, body });
  });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.problems = [];
  page.on('pageerror', (error) => page.problems.push(`page error: ${error.message}`));
  try {
    await page.goto(`${server.url}/#live`);
    await page.locator('#tail .event[data-position="4.0"]').waitFor();
    const positions = await page.locator('#tail .event').evaluateAll((items) => items.map((item) => item.dataset.position));
    assert.deepEqual(positions, ['4.0', '3.0', '2.0'], 'newest first, each once');
    assert.equal(requests[0].lastEventId, null);
    assert.match(requests[0].url, /from=1\.4294967295/, 'starts after the last record the board shows');
    assert.ok(
      /from=3\.0(&|$)/.test(requests[1].url) || requests[1].lastEventId === '3.0',
      `the resume asks for what follows the last event seen: ${JSON.stringify(requests[1])}`,
    );
    await page.click('#tab-board');
    await column(page, 'done').locator('.card[data-id="1"][data-version="2"]').waitFor();
    assert.equal(await card(page, 2).count(), 0, 'the created-then-deleted ticket is gone');
  } finally {
    await closeConsole(page);
    await stopServer(server);
  }
});

test('the history view shows every event of a ticket in order, old → new', { timeout: TEST_MS }, async () => {
  const server = await startServer(newDir('history'));
  await http(server, 'POST', '/tickets', { body: { title: 'Other', description: 'interleaved' } });
  await http(server, 'POST', '/tickets', { body: { title: 'Tracked', description: 'first' } });
  await http(server, 'PATCH', '/tickets/2', { body: { status: 'in-progress' } });
  await http(server, 'PATCH', '/tickets/1', { body: { status: 'done' } });
  await http(server, 'PATCH', '/tickets/2', { body: { title: 'Tracked, renamed', description: 'second' } });
  await http(server, 'PATCH', '/tickets/2', { body: { status: 'done' } });
  const page = await openConsole(server);
  try {
    await card(page, 2).locator('button[data-action="history"]').click();
    const events = page.locator('#history-list .event');
    await events.nth(3).waitFor();
    assert.equal(await events.count(), 4);
    const rows = await events.evaluateAll((items) =>
      items.map((item) => [item.dataset.type, Number(item.dataset.lsn), Number(item.dataset.version), item.querySelector('.changes').textContent]),
    );
    assert.deepEqual(rows.map((r) => r[0]), ['created', 'updated', 'updated', 'updated']);
    assert.deepEqual(rows.map((r) => r[1]), [2, 3, 5, 6], 'LSNs in log order');
    assert.deepEqual(rows.map((r) => r[2]), [1, 2, 3, 4]);
    assert.match(rows[1][3], /status: To do → In progress/);
    assert.match(rows[2][3], /title: "Tracked" → "Tracked, renamed"/);
    assert.match(rows[2][3], /description: "first" → "second"/);
    assert.match(rows[3][3], /status: In progress → Done/);
    assert.match(await events.first().locator('time').getAttribute('datetime'), /^\d{4}-\d\d-\d\dT/);
    assert.equal(new URL(page.url()).hash, '#history/2');
  } finally {
    await closeConsole(page);
    await stopServer(server);
  }
});

test('the health view shows the last LSN, the durability mode, tickets by status and the recovery report', { timeout: TEST_MS }, async () => {
  const server = await startServer(newDir('health'));
  for (let i = 0; i < 3; i += 1) await http(server, 'POST', '/tickets', { body: { title: `t${i}`, description: 'd' } });
  await http(server, 'PATCH', '/tickets/1', { body: { status: 'in-progress' } });
  const stats = (await http(server, 'GET', '/stats')).json;
  assert.equal(stats.last_lsn, 4);
  const page = await openConsole(server, { hash: '#health' });
  try {
    const value = (key) => page.locator(`#view-health dd[data-key="${key}"]`);
    await value('last_lsn').waitFor();
    assert.equal(await value('last_lsn').textContent(), '4');
    assert.equal(await value('durability').textContent(), 'always');
    assert.equal(await value('writes').textContent(), 'accepted');
    assert.equal(await value('todo').textContent(), '2');
    assert.equal(await value('in_progress').textContent(), '1');
    assert.match(await value('torn_tail').textContent(), /none/);
    assert.match(await value('snapshot').textContent(), /none/);
    await http(server, 'POST', '/tickets', { body: { title: 'one more', description: 'd' } });
    await page.click('#health-refresh');
    await page.locator('#view-health dd[data-key="last_lsn"]', { hasText: /^5$/ }).waitFor();
  } finally {
    await closeConsole(page);
    await stopServer(server);
  }
});

test('the page keeps working after the server restarts', { timeout: TEST_MS }, async (t) => {
  const dir = newDir('restart');
  let server = await startServer(dir);
  await http(server, 'POST', '/tickets', { body: { title: 'Before the restart', description: 'd' } });
  const page = await openConsole(server);
  try {
    await card(page, 1).waitFor();
    assert.ok(await eventsAvailable(server), 'GET /events must answer a text/event-stream');
    await page.locator('#live-state[data-state="on"]').waitFor();
    await stopServer(server);
    // The same address, so the open page reaches it.
    server = await startServer(dir, { listen: `127.0.0.1:${new URL(server.url).port}` });
    await createInPage(page, 'After the restart', 'd');
    await column(page, 'todo').locator('.card[data-id="2"]', { hasText: 'After the restart' }).waitFor();
    await card(page, 1).locator('button[data-action="move"][data-to="done"]').click();
    await column(page, 'done').locator('.card[data-id="1"][data-version="2"]').waitFor();
    assert.equal((await http(server, 'GET', '/tickets/1')).json.status, 'done');
    await page.locator('#live-state[data-state="on"]').waitFor({ timeout: STEP_MS * 2 });
    await http(server, 'POST', '/tickets', { body: { title: 'Seen live after restart', description: 'd' } });
    await column(page, 'todo').locator('.card[data-id="3"]').waitFor();
    // Resumed exactly: each event once in the tail.
    const positions = await page.locator('#tail .event').evaluateAll((items) => items.map((item) => item.dataset.position));
    assert.equal(new Set(positions).size, positions.length, `an event was repeated: ${positions}`);
  } finally {
    await closeConsole(page);
    await stopServer(server);
  }
});

test('with a token the console asks for it and sends it as the bearer token', { timeout: TEST_MS }, async () => {
  const dir = newDir('token');
  const tokenFile = path.join(path.dirname(dir), 'token');
  writeFileSync(tokenFile, 'open-sesame\n');
  const server = await startServer(dir, { extra: ['--token-file', tokenFile] });
  const withToken = { headers: { Authorization: 'Bearer open-sesame' } };
  await http(server, 'POST', '/tickets', { body: { title: 'Behind a token', description: 'd' }, ...withToken });
  const page = await openConsole(server);
  const streams = [];
  await page.route('**/events*', async (route) => {
    streams.push((await route.request().allHeaders()).authorization || null);
    const event = { type: 'created', lsn: 9, ticket_id: 9, version: 1, at: '2026-01-01T00:00:00.000Z', title: 'Via fetch', description: 'd' };
    await route.fulfill({ status: 200, headers: { 'Content-Type': 'text/event-stream' }, body: `: hi\n\nid: 9.0\nevent: created\ndata: ${JSON.stringify(event)}\n\n` });
  });
  try {
    await page.locator('#token-panel').waitFor({ state: 'visible' });
    await page.fill('#token-input', 'open-sesame');
    await page.keyboard.press('Enter');
    await card(page, 1).waitFor();
    await createInPage(page, 'Created with the token', 'd');
    await card(page, 2).waitFor();
    assert.equal((await http(server, 'GET', '/tickets/2', withToken)).json.title, 'Created with the token');
    // With a token the event stream is read with fetch, carrying it.
    await page.locator('#tail .event[data-position="9.0"]').waitFor({ state: 'attached' });
    assert.equal(streams[streams.length - 1], 'Bearer open-sesame');
  } finally {
    await closeConsole(page);
    await stopServer(server);
  }
});

test('100,000 tickets: each column shows one page and loads the next with the cursor; screenshots of the board', { timeout: TEST_MS * 2 }, async () => {
  const server = await startServer(newDir('many'), { extra: [] });
  const batch = Array.from({ length: 1000 }, (_, i) => ({ title: `Ticket ${i}`, description: 'bulk' }));
  for (let round = 0; round < 100; round += 1) {
    const reply = await http(server, 'POST', '/tickets/batch', { body: { tickets: batch } });
    assert.equal(reply.status, 201);
  }
  for (const [id, status] of [[2, 'in-progress'], [3, 'done'], [5, 'in-progress']]) {
    await http(server, 'PATCH', `/tickets/${id}`, { body: { status } });
  }
  await http(server, 'PATCH', '/tickets/1', { body: { title: 'Set up CI', description: 'Run .ci/run on every push' } });
  await http(server, 'PATCH', '/tickets/2', { body: { title: 'Write the console' } });
  await http(server, 'PATCH', '/tickets/3', { body: { title: 'Embed the assets' } });
  const page = await openConsole(server, { viewport: { width: 1280, height: 900 } });
  try {
    const todo = column(page, 'todo').locator('.card');
    await todo.nth(49).waitFor();
    assert.equal(await todo.count(), 50);
    const more = page.locator('[data-more="todo"]');
    await page.locator('[data-more="todo"]', { hasText: '50 of 99997 shown' }).waitFor();
    await more.click();
    await todo.nth(99).waitFor();
    assert.equal(await todo.count(), 100);
    assert.equal(await todo.nth(99).getAttribute('data-id'), '103');
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'console-board.png') });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: path.join(SCREENSHOT_DIR, 'console-board-phone.png') });
    // Phone-sized: one column, nothing wider than the screen.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than a phone's screen`);
  } finally {
    await closeConsole(page);
    await stopServer(server);
  }
});

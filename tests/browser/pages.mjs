// Drives the web interface (issue 15) in headless Chromium against a tradeledger server
// started with the fixtures.
//
//   node tests/browser/pages.mjs <base-url> <write-token> [<protected-base-url> <read-token>] <screenshot-dir>
//
// The optional second server runs with --read-tokens: its pages must ask for the token,
// keep it in sessionStorage only and then work (HTTP and WebSocket).
// For every page: the fixtures' figures, the chart drawn, the in-browser proof verdict, live
// updates of head pages within 2 s of a release published over HTTP (with a visible notice),
// asOf pages that stay as they are, no request to another origin and no console error.
// Screenshots of every page at 1280 and 375 px go to <screenshot-dir>/web-*.png. Prints
// `fcp_ms=` (first contentful paint of the dataset page) and `rendered_ms=` (its data drawn).
// Exits 0 when all hold, 1 with the reasons otherwise. CHROMIUM overrides the browser.
import { mkdirSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const args = process.argv.slice(2);
const shots = args.pop();
const [base, token, protectedBase, readToken] = args;
if (!base || !token || !shots) {
  console.error('usage: node pages.mjs <base-url> <write-token> [<read-protected-base-url> <read-token>] <screenshot-dir>');
  process.exit(2);
}
const origin = new URL(base).origin;
const wsOrigin = origin.replace(/^http/, 'ws');
mkdirSync(shots, { recursive: true });

const DS = 'KR_KNOWLEDGE_SERVICES';
const PRELIMINARY = '6b1f0c2e-4d3a-4e51-9a57-2025a0000001';
const SYNTHETIC = '6b1f0c2e-4d3a-4e51-9a57-2025a0000002';
const STEP_TIMEOUT = 30_000;
/** The bound for a head page to show a release after it was acknowledged. */
const LIVE_BOUND_MS = 2_000;

const requests = [];
const consoleErrors = [];
const failures = [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // `ledger.test` is the server under a name that is not localhost: over plain http:// the
  // browser gives its pages no WebCrypto, as on a server reached by its address.
  args: ['--no-sandbox', '--host-resolver-rules=MAP ledger.test 127.0.0.1'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
await fromDisk(context);

/** For working on app.js without rebuilding the binary: serve it from the source tree. */
async function fromDisk(ctx) {
  if (process.env.TRADELEDGER_APP_FROM_DISK !== '1') return;
  const dir = join(dirname(fileURLToPath(import.meta.url)), '../../src/web/app');
  await ctx.route(/\/assets\/app\.[0-9a-f]+\.(js|css)$/, (route) => {
    const ext = route.request().url().endsWith('.js') ? 'js' : 'css';
    route.fulfill({
      body: readFileSync(join(dir, `app.${ext}`)),
      contentType: ext === 'js' ? 'text/javascript' : 'text/css',
    });
  });
}

async function newPage(width = 1280) {
  const page = await context.newPage();
  await page.setViewportSize({ width, height: 900 });
  page.setDefaultTimeout(STEP_TIMEOUT);
  page.on('request', (r) => requests.push(r.url()));
  page.on('websocket', (ws) => requests.push(ws.url()));
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`${page.url()}: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400) consoleErrors.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`${page.url()}: uncaught: ${e.message}`));
  return page;
}

let current = null;
async function step(name, fn) {
  try {
    await fn();
    console.log(`ok: ${name}`);
  } catch (e) {
    failures.push(`${name}: ${e.message.split('\n')[0]}`);
    console.log(`FAILED: ${name}: ${e.message.split('\n')[0]}`);
    if (current) await current.screenshot({ path: join(shots, `failed-${name.replace(/\W+/g, '-')}.png`) }).catch(() => {});
  }
}

function expect(cond, message) {
  if (!cond) throw new Error(message);
}

/** Text of the first element matching `selector`, once it exists. */
async function text(page, selector) {
  const loc = page.locator(selector).first();
  await loc.waitFor();
  return (await loc.textContent()).replace(/\s+/g, ' ').trim();
}

/** The page at 1280 px (full page) and at 375 px. */
async function screenshots(page, name) {
  // The first screen of each, as docs/web.md shows them (docs/screenshots/), and the full page.
  await page.screenshot({ path: join(shots, `readme-${name}.png`) });
  await page.screenshot({ path: join(shots, `web-${name}.png`), fullPage: true });
  await page.setViewportSize({ width: 375, height: 800 });
  await page.waitForTimeout(150);
  await page.screenshot({ path: join(shots, `readme-${name}-375.png`) });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await page.screenshot({ path: join(shots, `web-${name}-375.png`), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });
  expect(overflow <= 1, `at 375 px the page is ${overflow} px wider than the screen`);
}

async function publish(observations, title) {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({
      query: 'mutation($input: ReleaseInput!) { publishRelease(input: $input) { revision release { id } } }',
      variables: {
        input: {
          id: crypto.randomUUID(),
          dataset: DS,
          status: 'REVISED',
          title,
          publishedAt: '2026-03-10T03:00:00Z',
          source: 'SYNTHETIC: the browser test',
          observations,
        },
      },
    }),
  }).then((r) => r.json());
  if (response.errors) throw new Error(`publishing failed: ${JSON.stringify(response.errors)}`);
  return response.data.publishRelease;
}

try {
  const fixed = {};

  await step('the dataset page shows the seed breakdowns and paints fast', async () => {
    const page = (current = await newPage());
    const paints = [];
    // A cold load (new browser, nothing cached), then a reload with the assets cached.
    for (const load of ['cold', 'warm']) {
      await page.goto(`${base}/datasets/${DS}`);
      await page.locator('#breakdown-COUNTERPART').waitFor();
      const paint = await page.evaluate(() => {
        const fcp = performance.getEntriesByName('first-contentful-paint')[0];
        const done = performance.getEntriesByName('tradeledger:rendered')[0];
        return { fcp: fcp && Math.round(fcp.startTime), rendered: done && Math.round(done.startTime) };
      });
      console.log(`fcp_ms=${paint.fcp} rendered_ms=${paint.rendered} (${load})`);
      paints.push(paint);
    }
    // The issue asks for under 300 ms on this machine; a debug build on a loaded machine
    // gets a generous bound here and the measured numbers go in the report.
    expect(paints.every((p) => p.fcp > 0 && p.fcp < 1500), `first contentful paint at ${JSON.stringify(paints)}`);
    expect((await text(page, '#unit')) === 'USD millions', 'the unit and multiplier are shown');
    expect((await text(page, '#period')).includes('2025-S1'), 'the latest period is picked');
    const total = await text(page, '#breakdown-SERVICE_TYPE tr.total td.value');
    expect(total === '-4,610 deficit', `latest total is ${total}`);
    const prelim = await text(page, '#breakdown-SERVICE_TYPE tr.total td:nth-child(4)');
    expect(prelim === '-4,530 deficit', `the Bank of Korea's preliminary total is ${prelim}`);
    const residual = await text(page, '#breakdown-INDUSTRY tr.residual td.value');
    expect(residual === '-1,540 deficit', `latest industry residual is ${residual}`);
    expect((await text(page, '#breakdown-SERVICE_TYPE tr.residual td.value')) === '0', 'service types add up');
    const badge = await text(page, '#breakdown-SERVICE_TYPE tr.total .badge');
    expect(badge === 'REVISED', `status badge ${badge}`);
    const revision = await text(page, '#breakdown-SERVICE_TYPE tr.total td:nth-child(5)');
    expect(revision.includes('-80'), `revision from preliminary ${revision}`);
    expect((await text(page, '.synthetic-note')).includes('SYNTHETIC'), 'the synthetic revision is labelled');
    const suggested = await page.locator('#asOf-releases option').evaluateAll((os) => os.map((o) => o.value));
    expect(suggested.join() === '3,2', `asOf suggestions ${suggested}`);
    expect((await page.locator('#breakdown-SERVICE_TYPE tr.total .tag.synthetic').count()) === 1, 'synthetic tag on the revised total');
    await screenshots(page, 'dataset');
    fixed.dataset = page;
  });

  await step('an asOf dataset page shows the preliminary figures', async () => {
    const page = (current = await newPage());
    await page.goto(`${base}/datasets/${DS}?period=2025-S1&asOf=${PRELIMINARY}`);
    const residual = await text(page, '#breakdown-INDUSTRY tr.residual td.value');
    expect(residual === '-1,500 deficit', `industry residual as of the preliminary release is ${residual}`);
    const total = await text(page, '#breakdown-SERVICE_TYPE tr.total td.value');
    expect(total === '-4,530 deficit', `total as of the preliminary release is ${total}`);
    expect((await page.locator('#live-state').getAttribute('data-state')) === 'pinned', 'the page says it is pinned');
    expect((await page.locator('.tag.synthetic').count()) === 0, 'no synthetic figure as of the preliminary release');
    await screenshots(page, 'dataset-preliminary');
    // The same point by revision number and by time.
    await page.goto(`${base}/datasets/${DS}?period=2025-S1&asOf=2`);
    expect((await text(page, '#breakdown-INDUSTRY tr.residual td.value')) === '-1,500 deficit', 'asOf=2');
    await page.goto(`${base}/datasets/${DS}?period=2025-S1&asOf=2025-10-01T00:00:00Z`);
    expect((await text(page, '#breakdown-INDUSTRY tr.residual td.value')) === '-1,500 deficit', 'asOf by time');
    // The pickers put the choice in the URL.
    await page.locator('#asOf').fill('');
    await page.locator('#period').selectOption('2024-S2');
    await page.waitForURL(/period=2024-S2/);
    expect((await text(page, '#breakdown-SERVICE_TYPE tr.total td.value')) === '-3,790 deficit', '2024-S2 at the head');
    await page.goto(`${base}/datasets/${DS}?period=2025-S1&asOf=${PRELIMINARY}`);
    await page.locator('#breakdown-INDUSTRY').waitFor();
    fixed.pinned = page;
  });

  await step('the figure page draws the versions, their table and a verified proof', async () => {
    const page = (current = await newPage());
    await page.goto(`${base}/datasets/${DS}/figures/_T._T._T/2025-S1`);
    await page.locator('#chart canvas').first().waitFor();
    const drawn = await page.evaluate(() => {
      const c = document.querySelector('#chart canvas');
      const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let painted = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
      return { w: c.width, h: c.height, painted };
    });
    expect(drawn.w > 200 && drawn.h > 100 && drawn.painted > 500, `chart canvas ${JSON.stringify(drawn)}`);
    const rows = await page.locator('#versions tbody tr').allInnerTexts();
    expect(rows.length === 2, `${rows.length} versions`);
    expect(rows[0].includes('-4,530') && rows[0].includes('PRELIMINARY'), `first version: ${rows[0]}`);
    expect(rows[1].includes('-4,610') && rows[1].includes('-80') && rows[1].includes('synthetic'), `second: ${rows[1]}`);
    await page.locator('#proof-verdict.verified, #proof-verdict.failed').waitFor();
    const verdict = await text(page, '#proof-verdict');
    expect(verdict === 'verified', `proof verdict: ${verdict}`);
    // The offline evidence: a c2sp.org/tlog-proof of the same event, and the event itself.
    const links = await page.locator('p.evidence a[download]').evaluateAll((as) => as.map((a) => a.href));
    expect(links.length === 2, `evidence links: ${links}`);
    const [proofText, eventText] = await page.evaluate(
      (urls) => Promise.all(urls.map((u) => fetch(u).then((r) => r.text()))),
      links,
    );
    expect(proofText.startsWith('c2sp.org/tlog-proof@v1\nindex '), `tlog-proof: ${proofText.slice(0, 60)}`);
    expect(eventText.startsWith('{"format":'), `event: ${eventText.slice(0, 40)}`);
    await screenshots(page, 'figure');
    fixed.figure = page;
  });

  await step('a tampered proof is not verified', async () => {
    const page = (current = await newPage());
    // Change one hash of the audit path in the server's answer.
    // Queries go out as GETs with their parameters in the URL: match the path.
    await page.route((url) => url.pathname === '/graphql', async (route) => {
      const response = await route.fetch();
      let body = await response.text();
      if (body.includes('"proof"')) body = body.replace(/"hashes":\["([0-9a-f])/, (m, c) => `"hashes":["${c === '0' ? '1' : '0'}`);
      await route.fulfill({ response, body });
    });
    await page.goto(`${base}/datasets/${DS}/figures/_T._T._T/2025-S1`);
    await page.locator('#proof-verdict.verified, #proof-verdict.failed').waitFor();
    const verdict = await text(page, '#proof-verdict');
    expect(verdict.startsWith('FAILED:'), `tampered proof verdict: ${verdict}`);
    await page.close();
  });

  await step('the vintage triangle, its statistics and its CSV', async () => {
    const page = (current = await newPage());
    await page.goto(`${base}/datasets/${DS}/revisions`);
    const row = await text(page, '#triangle tr[data-period="2025-S1"]');
    expect(row.includes('-4,530') && row.includes('-4,610'), `2025-S1 row: ${row}`);
    const revised = page.locator('#triangle tr[data-period="2025-S1"] td.revised');
    expect((await revised.count()) === 1, 'one revised cell');
    expect((await revised.innerText()).includes('▼'), 'the revised cell has a marker');
    expect(((await revised.getAttribute('title')) || '').includes('revised down by -80'), 'and a title');
    const overall = await text(page, '#overall');
    expect(overall.includes('-55') && overall.includes('55'), `overall mean revision: ${overall}`);
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#csv-download').click()]);
    const csv = readFileSync(await download.path(), 'utf8');
    expect(download.suggestedFilename() === `${DS}__T._T._T_vintages.csv`, `CSV named ${download.suggestedFilename()}`);
    expect(csv.split('\r\n')[2] === '2025-S1,-4530,-4610', `CSV: ${JSON.stringify(csv)}`);
    await screenshots(page, 'revisions');
    fixed.revisions = page;
  });

  await step('the release page lists what the release changed', async () => {
    const page = (current = await newPage());
    await page.goto(`${base}/releases/${SYNTHETIC}`);
    const row = await text(page, '#release-figures tr[data-key="_T._T._T"][data-period="2025-S1"]');
    expect(row.includes('-4,530') && row.includes('-4,610') && row.includes('-80') && row.includes('revised'), `total row: ${row}`);
    expect((await text(page, '#release-counts')).includes('5 revised'), 'five revised figures');
    expect((await text(page, '.synthetic-note')).includes('SYNTHETIC'), 'labelled synthetic');
    await screenshots(page, 'release');
    await page.goto(`${base}/releases/${PRELIMINARY}`);
    expect((await text(page, '#release-counts')).includes('12 new'), 'the preliminary release is all new');
    await screenshots(page, 'release-preliminary');
    await page.close();
  });

  await step('the audit page shows the chain, a verified checkpoint and the witness', async () => {
    const page = (current = await newPage());
    await page.goto(`${base}/audit`);
    await page.locator('#events').waitFor();
    expect((await page.locator('#events tbody tr').count()) === 3, 'three events');
    expect((await text(page, '#ev-1')).includes('first event'), 'the first event starts the chain');
    expect((await text(page, '#ev-3')).includes('links to 2'), 'event 3 links to 2');
    await page.locator('#checkpoint-verdict.verified, #checkpoint-verdict.failed').waitFor();
    expect((await text(page, '#checkpoint-verdict')).startsWith('verified'), 'checkpoint verified');
    await page.locator('#events-verdict.verified, #events-verdict.failed').waitFor();
    const events = await text(page, '#events-verdict');
    expect(events.startsWith('verified') && events.includes('all 3 are leaves of the signed tree of 3 events'), `events verdict: ${events}`);
    expect((await text(page, '#witness-command')).includes('tradeledger witness --url'), 'witness command');
    await screenshots(page, 'audit');
    await page.locator('#f-kind').selectOption('DATASET_DEFINED');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.waitForURL(/kind=DATASET_DEFINED/);
    await page.locator('#events').waitFor();
    expect((await page.locator('#events tbody tr').count()) === 1, 'the kind filter');
    await page.locator('#events-verdict.verified, #events-verdict.failed').waitFor();
    const one = await text(page, '#events-verdict');
    expect(one.startsWith('verified') && one.includes('is a leaf of the signed tree of 3 events'), `filtered events verdict: ${one}`);
    await page.goto(`${base}/audit`);
    await page.locator('#events').waitFor();
    fixed.audit = page;
  });

  await step('over plain http:// from a non-localhost name, the pages check with the embedded @noble code', async () => {
    // A context of its own: its requests go to another origin on purpose.
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
    await fromDisk(ctx);
    const named = base.replace('127.0.0.1', 'ledger.test');
    const uncaught = [];
    const open = async (url, tamper) => {
      const page = await ctx.newPage();
      page.setDefaultTimeout(STEP_TIMEOUT);
      page.on('pageerror', (e) => uncaught.push(e.message));
      page.on('console', (m) => {
        if (m.type() === 'error') uncaught.push(`console: ${m.text()}`);
      });
      if (tamper) await tamper(page);
      await page.goto(url);
      return page;
    };
    // The driver does not resolve ledger.test as the browser does: it fetches from the address.
    const direct = (route) => route.fetch({ url: route.request().url().replace('//ledger.test:', '//127.0.0.1:') });
    const verdictOf = async (page, id) => {
      await page.locator(`#${id}.verified, #${id}.failed`).waitFor();
      return text(page, `#${id}`);
    };

    const figure = await open(`${named}/datasets/${DS}/figures/_T._T._T/2025-S1`);
    const secure = await figure.evaluate(() => ({ secure: window.isSecureContext, subtle: Boolean(window.crypto && window.crypto.subtle) }));
    expect(!secure.secure && !secure.subtle, `the page is not a secure context: ${JSON.stringify(secure)}`);
    expect((await verdictOf(figure, 'proof-verdict')) === 'verified', `figure verdict: ${await text(figure, '#proof-verdict')}`);
    const steps = await text(figure, '.proof-steps');
    expect(steps.includes('the embedded @noble/hashes') && steps.includes('verifies (the embedded @noble/ed25519)'), `steps: ${steps}`);
    expect((await figure.locator('p.evidence a[download]').count()) === 2, 'the offline evidence is offered');
    await figure.screenshot({ path: join(shots, 'web-figure-not-secure.png'), fullPage: true });
    await figure.close();

    const audit = await open(`${named}/audit`);
    expect((await verdictOf(audit, 'checkpoint-verdict')).startsWith('verified'), `audit checkpoint: ${await text(audit, '#checkpoint-verdict')}`);
    const events = await verdictOf(audit, 'events-verdict');
    expect(events.startsWith('verified here (the embedded @noble/hashes') && events.includes('all 3 are leaves'), `audit events: ${events}`);
    expect((await text(audit, '#ev-3')).includes('✓ links to 2'), 'event 3 links to 2, recomputed');
    await audit.screenshot({ path: join(shots, 'web-audit-not-secure.png'), fullPage: true });
    await audit.close();
    // Filtered to event 1: the rest of the tree comes from the hash tiles.
    const filtered = await open(`${named}/audit?kind=DATASET_DEFINED`);
    const one = await verdictOf(filtered, 'events-verdict');
    expect(one.startsWith('verified') && one.includes('is a leaf of the signed tree of 3 events'), `filtered audit: ${one}`);
    await filtered.close();

    // One byte of an event's canonical text changed in the server's answer.
    const editedText = await open(`${named}/audit`, (page) =>
      page.route((url) => url.pathname === '/graphql', async (route) => {
        const response = await direct(route);
        const body = (await response.text()).replace('\\"actor\\":\\"', '\\"actor\\":\\"X');
        await route.fulfill({ response, body });
      }),
    );
    const editedVerdict = await verdictOf(editedText, 'events-verdict');
    expect(editedVerdict.startsWith('FAILED: event 1: its canonical bytes hash to'), `edited canonical text: ${editedVerdict}`);
    expect((await text(editedText, '#ev-1')).includes('✗'), `the row says so: ${await text(editedText, '#ev-1')}`);
    await editedText.screenshot({ path: join(shots, 'web-audit-tampered.png'), fullPage: true });
    await editedText.close();

    // One byte of a level-0 hash tile changed: the leaves no longer lead to the signed root.
    const editedTile = await open(`${named}/audit?kind=DATASET_DEFINED`, (page) =>
      page.route((url) => url.pathname.startsWith('/tlog/tile/0/'), async (route) => {
        const response = await direct(route);
        const body = Buffer.from(await response.body());
        body[body.length - 1] ^= 1;
        await route.fulfill({ response, body });
      }),
    );
    const tileVerdict = await verdictOf(editedTile, 'events-verdict');
    expect(tileVerdict.startsWith('FAILED:') && tileVerdict.includes('do not lead to the signed root'), `edited tile: ${tileVerdict}`);
    await editedTile.close();

    // One hash of the figure's audit path changed.
    const editedProof = await open(`${named}/datasets/${DS}/figures/_T._T._T/2025-S1`, (page) =>
      page.route((url) => url.pathname === '/graphql', async (route) => {
        const response = await direct(route);
        let body = await response.text();
        if (body.includes('"proof"')) body = body.replace(/"hashes":\["([0-9a-f])/, (m, c) => `"hashes":["${c === '0' ? '1' : '0'}`);
        await route.fulfill({ response, body });
      }),
    );
    const proofVerdict = await verdictOf(editedProof, 'proof-verdict');
    expect(proofVerdict.startsWith('FAILED:'), `tampered proof over plain http: ${proofVerdict}`);
    await editedProof.close();
    expect(uncaught.length === 0, `uncaught: ${uncaught}`);
    await ctx.close();
  });

  await step('the start page lists the dataset and the latest releases', async () => {
    const page = (current = await newPage());
    await page.goto(`${base}/`);
    expect((await text(page, '#datasets')).includes(DS), 'the dataset');
    const feed = await page.locator('#release-feed tbody tr').allInnerTexts();
    expect(feed.length === 2 && feed[0].includes('SYNTHETIC') && feed[0].includes('synthetic'), `feed: ${feed}`);
    await screenshots(page, 'home');
    fixed.home = page;
  });

  await step('unknown datasets and releases say "not found"', async () => {
    const page = (current = await newPage());
    for (const path of [`/datasets/NO_SUCH`, `/datasets/NO_SUCH/revisions`, `/releases/00000000-0000-4000-8000-000000000000`, `/releases/not-a-uuid`]) {
      await page.goto(base + path);
      expect((await text(page, '.not-found')).length > 0 && (await text(page, 'h1')) === 'Not found', `${path}`);
    }
    await page.close();
  });

  await step('keyboard: the first Tab reaches a link with a visible focus ring', async () => {
    const page = (current = fixed.dataset);
    await page.keyboard.press('Tab');
    const focus = await page.evaluate(() => {
      const el = document.activeElement;
      return { tag: el.tagName, outline: getComputedStyle(el).outlineStyle };
    });
    expect(focus.tag === 'A' && focus.outline !== 'none', `focus ${JSON.stringify(focus)}`);
  });

  await step(`head pages update within ${LIVE_BOUND_MS} ms of a release; asOf pages do not`, async () => {
    const heads = ['home', 'dataset', 'figure', 'revisions', 'audit'];
    for (const name of heads) {
      current = fixed[name];
      await fixed[name].locator('#live-state[data-state="live"]').waitFor();
    }
    const before = await text(fixed.pinned, 'main');
    const published = await publish([{ key: '_T._T._T', period: '2025-S1', value: '-4700' }], `SYNTHETIC live update ${Date.now()}`);
    const acknowledged = Date.now();
    const checks = {
      home: (p) => p.locator(`#release-feed tr[data-revision="${published.revision}"]`).waitFor({ timeout: LIVE_BOUND_MS }),
      dataset: (p) => p.locator('#breakdown-SERVICE_TYPE tr.total td.value', { hasText: '-4,700' }).waitFor({ timeout: LIVE_BOUND_MS }),
      figure: (p) => p.locator('#versions tbody tr', { hasText: '-4,700' }).waitFor({ timeout: LIVE_BOUND_MS }),
      revisions: (p) => p.locator('#triangle tr[data-period="2025-S1"] td.revised', { hasText: '-4,700' }).waitFor({ timeout: LIVE_BOUND_MS }),
      audit: (p) => p.locator(`#ev-${published.revision}`).waitFor({ timeout: LIVE_BOUND_MS }),
    };
    const late = [];
    await Promise.all(
      heads.map(async (name) => {
        try {
          await checks[name](fixed[name]);
          await fixed[name].locator('#live-notice').waitFor({ timeout: Math.max(1, LIVE_BOUND_MS - (Date.now() - acknowledged)) });
          console.log(`live: ${name} updated ${Date.now() - acknowledged} ms after the acknowledgement`);
        } catch (e) {
          late.push(`${name}: ${e.message.split('\n')[0]}`);
        }
      }),
    );
    expect(late.length === 0, `not updated in time: ${late.join('; ')}`);
    await fixed.pinned.waitForTimeout(1000);
    const after = await text(fixed.pinned, 'main');
    expect(after === before, 'the asOf page changed');
    const releases = await text(fixed.home, '#datasets tbody td:nth-child(4)');
    expect(releases === '3', `the start page counts ${releases} releases`);
    expect((await fixed.pinned.locator('#live-notice').count()) === 0, 'the asOf page shows no notice');
    expect((await text(fixed.dataset, '#breakdown-SERVICE_TYPE tr.total th')).includes('updated'), 'the updated figure is marked');
    expect((await fixed.dataset.locator('#breakdown-SERVICE_TYPE tr.item .tag.updated').count()) === 0, 'only it');
    await fixed.dataset.screenshot({ path: join(shots, 'web-dataset-live.png') });
  });
  await step('a wrong period on the figure page says what is wrong once', async () => {
    const page = (current = await newPage());
    // A quarter of half-year statistics: both of the page's fields refuse it, with one message.
    await page.goto(`${base}/datasets/${DS}/figures/_T._T._T/2025-Q1`);
    const error = await text(page, '.error');
    const times = error.split('is a quarterly (Q) period').length - 1;
    expect(times === 1, `the error says it ${times} times: ${error}`);
    await page.close();
  });

  await step('a figure of many versions at 375 px: labels do not overlap; an unchanged one is not REVISED', async () => {
    const key = 'IPR._T._T';
    // The fourth value repeats the third: that release republished the figure unchanged.
    const values = ['-2460', '-2455', '-2470', '-2470', '-2440', '-2480', '-2430', '-2490', '-2420', '-2500', '-2410', '-2510'];
    for (const [i, v] of values.entries()) {
      await publish([{ key, period: '2025-S1', value: v }], `SYNTHETIC version ${i + 2} of a figure ${Date.now()}`);
    }
    const page = (current = await newPage(375));
    await page.goto(`${base}/datasets/${DS}/figures/${key}/2025-S1`);
    await page.locator('#chart canvas').first().waitFor();
    await page.waitForFunction(() => document.querySelector('#chart').dataset.labels);
    const chart = await page.evaluate(() => ({
      boxes: JSON.parse(document.querySelector('#chart').dataset.labels),
      skipped: Number(document.querySelector('#chart').dataset.labelsSkipped),
    }));
    const overlapping = chart.boxes.filter((a, i) =>
      chart.boxes.some((b, j) => j < i && a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3]),
    );
    expect(overlapping.length === 0, `overlapping labels: ${JSON.stringify(overlapping)}`);
    expect(chart.skipped > 0 && chart.boxes.length >= 1, `labels drawn ${chart.boxes.length}, left out ${chart.skipped}`);
    const rows = await page.locator('#versions tbody tr').allInnerTexts();
    expect(rows.length === values.length + 2, `${rows.length} versions`);
    const unchanged = rows.filter((r) => r.includes('UNCHANGED'));
    expect(unchanged.length === 1 && !unchanged[0].includes('REVISED'), `unchanged rows: ${unchanged}`);
    expect(rows[rows.length - 1].includes('REVISED'), `the last version revised the figure: ${rows[rows.length - 1]}`);
    await page.screenshot({ path: join(shots, 'web-figure-many-375.png'), fullPage: true });
    // The latest version republished unchanged: the figure's badge says so, not REVISED.
    await publish([{ key, period: '2025-S1', value: '-2510' }], `SYNTHETIC unchanged again ${Date.now()}`);
    await page.goto(`${base}/datasets/${DS}/figures/${key}/2025-S1`);
    const meta = await text(page, '.meta');
    expect(meta.includes('UNCHANGED') && !meta.includes('REVISED'), `meta: ${meta}`);
    await page.close();
  });

  if (protectedBase) {
    await step('with --read-tokens the pages ask for a token and keep it in sessionStorage only', async () => {
      // A fresh context: no storage from the pages above. The 401s before the token is
      // given are expected, so this page's console is not checked; its requests are.
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
      await fromDisk(ctx);
      const page = (current = await ctx.newPage());
      page.setDefaultTimeout(STEP_TIMEOUT);
      const own = new URL(protectedBase).origin;
      const uncaught = [];
      page.on('request', (r) => r.url().startsWith(`${own}/`) || requests.push(r.url()));
      page.on('websocket', (ws) => ws.url().startsWith(own.replace(/^http/, 'ws') + '/') || requests.push(ws.url()));
      page.on('pageerror', (e) => uncaught.push(e.message));
      await page.goto(`${protectedBase}/datasets/${DS}`);
      await page.locator('#token').waitFor();
      await page.screenshot({ path: join(shots, 'web-token.png') });
      await page.locator('#token').fill(readToken);
      await page.getByRole('button', { name: 'Use this token' }).click();
      const total = await text(page, '#breakdown-SERVICE_TYPE tr.total td.value');
      expect(total === '-4,610 deficit', `with the token the total is ${total}`);
      await page.locator('#live-state[data-state="live"]').waitFor();
      const storage = await page.evaluate(() => ({
        session: sessionStorage.getItem('tradeledger.readToken'),
        local: localStorage.length,
        cookie: document.cookie,
      }));
      expect(storage.session === readToken && storage.local === 0 && storage.cookie === '', `storage ${JSON.stringify(storage)}`);
      // A wrong token: the form again, saying why.
      await page.evaluate(() => sessionStorage.setItem('tradeledger.readToken', 'not-the-token'));
      await page.reload();
      await page.locator('#token').waitFor();
      expect((await text(page, '.error')).includes('not valid'), 'the refusal is shown');
      expect(uncaught.length === 0, `uncaught: ${uncaught}`);
      await ctx.close();
    });
  }
} catch (e) {
  failures.push(`unexpected: ${e.message}`);
} finally {
  await browser.close();
}

const foreign = requests.filter((u) => !u.startsWith(`${origin}/`) && !u.startsWith(`${wsOrigin}/`) && !u.startsWith('blob:'));
if (foreign.length) failures.push(`requests to other origins: ${foreign.join(', ')}`);
if (consoleErrors.length) failures.push(`console errors: ${consoleErrors.join(' | ')}`);
console.log(`${requests.length} requests, all checked against ${origin}`);
if (failures.length) {
  console.error(failures.map((f) => `pages test: ${f}`).join('\n'));
  process.exit(1);
}
console.log('pages test: all checks passed');

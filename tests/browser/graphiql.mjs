// Drives GraphiQL in headless Chromium against a running tradeledger server.
//
//   node tests/browser/graphiql.mjs <base-url> <write-token> <screenshot-dir>
//
// Checks that GraphiQL renders, that the schema loads into the Docs panel, that a query
// shows a fixture figure, that a subscription receives a release published over HTTP in
// the meantime, that the page requests nothing from any other origin and that nothing is
// logged as an error on the console. Exits 0 when all hold, 1 with the reasons otherwise.
// CHROMIUM overrides the browser (default /usr/bin/chromium).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [base, token, shots] = process.argv.slice(2);
if (!base || !token || !shots) {
  console.error('usage: node graphiql.mjs <base-url> <write-token> <screenshot-dir>');
  process.exit(2);
}
const origin = new URL(base).origin;
const wsOrigin = origin.replace(/^http/, 'ws');
mkdirSync(shots, { recursive: true });

const STEP_TIMEOUT = 30_000;
const requests = [];
const consoleErrors = [];
const failures = [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  // Root in a container has no user namespace for Chromium's sandbox.
  args: ['--no-sandbox'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(STEP_TIMEOUT);
  page.on('request', (r) => requests.push(r.url()));
  page.on('websocket', (ws) => requests.push(ws.url()));
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('response', (r) => {
    if (r.status() >= 400) consoleErrors.push(`HTTP ${r.status()} for ${r.url()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`uncaught: ${e.message}`));

  async function step(name, fn) {
    try {
      await fn();
      console.log(`ok: ${name}`);
    } catch (e) {
      failures.push(`${name}: ${e.message.split('\n')[0]}`);
      console.log(`FAILED: ${name}`);
      await page.screenshot({ path: join(shots, `failed-${name.replace(/\W+/g, '-')}.png`) }).catch(() => {});
      throw e;
    }
  }

  // GraphiQL's query editor is CodeMirror 5, which keeps its API on its wrapper element.
  // GraphiQL parses the editor's text after a debounce and picks the transport (HTTP, or the
  // WebSocket for a subscription) from that parse, so give it the time a typist would.
  async function setQuery(text) {
    await page.evaluate((t) => {
      document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(t);
    }, text);
    await page.waitForTimeout(1500);
  }
  const result = () => page.locator('.graphiql-response');

  await step('GraphiQL renders', async () => {
    const response = await page.goto(`${base}/graphql`);
    if (response.status() !== 200) throw new Error(`GET /graphql answered ${response.status()}`);
    const csp = response.headers()['content-security-policy'] || '';
    if (!csp.startsWith("default-src 'self'")) throw new Error(`content security policy is ${JSON.stringify(csp)}`);
    await page.locator('.graphiql-container').waitFor();
    await page.locator('.graphiql-query-editor .CodeMirror').waitFor();
    await page.screenshot({ path: join(shots, 'graphiql.png') });
  });

  await step('the schema loads into Docs', async () => {
    await page.getByRole('button', { name: /documentation explorer/i }).click();
    const docs = page.locator('.graphiql-doc-explorer');
    await docs.getByText('Query', { exact: true }).first().waitFor();
    await docs.getByText('Query', { exact: true }).first().click();
    await docs.getByText('breakdown', { exact: true }).first().waitFor();
    await page.screenshot({ path: join(shots, 'graphiql-docs.png') });
  });

  await step('a query shows a fixture figure', async () => {
    await setQuery(
      '{\n  observation(dataset: "KR_KNOWLEDGE_SERVICES", key: "_T._T._T", period: "2025-S1") {\n    value\n    status\n  }\n}\n',
    );
    await page.locator('.graphiql-execute-button').click();
    await result().getByText('"-4610"').waitFor();
    await result().getByText('"REVISED"').waitFor();
    await page.screenshot({ path: join(shots, 'graphiql-query.png') });
  });

  await step('a subscription receives a release published meanwhile', async () => {
    const subscribed = page.waitForEvent('websocket').then((ws) =>
      ws.waitForEvent('framesent', { predicate: (f) => String(f.payload).includes('"subscribe"') }),
    );
    await setQuery(
      'subscription {\n  releasePublished(dataset: "KR_KNOWLEDGE_SERVICES") {\n    revision\n    release { title status }\n  }\n}\n',
    );
    await page.locator('.graphiql-execute-button').click();
    await subscribed;
    const title = `SYNTHETIC browser test release ${Date.now()}`;
    const published = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({
        query: 'mutation($input: ReleaseInput!) { publishRelease(input: $input) { revision } }',
        variables: {
          input: {
            id: crypto.randomUUID(),
            dataset: 'KR_KNOWLEDGE_SERVICES',
            status: 'PRELIMINARY',
            title,
            publishedAt: '2026-01-15T00:00:00Z',
            source: 'SYNTHETIC: the browser test',
            observations: [{ key: 'IPR._T._T', period: '2031-S1', value: '1' }],
          },
        },
      }),
    }).then((r) => r.json());
    if (published.errors) throw new Error(`publishing failed: ${JSON.stringify(published.errors)}`);
    await result().getByText(title).waitFor();
    await page.screenshot({ path: join(shots, 'graphiql-subscription.png') });
  });

  await step('the start page renders', async () => {
    const response = await page.goto(`${base}/`);
    if (response.status() !== 200) throw new Error(`GET / answered ${response.status()}`);
    await page.getByRole('link', { name: 'GraphiQL' }).waitFor();
    await page.screenshot({ path: join(shots, 'start.png') });
  });
} catch {
  // Recorded by step(); the summary below reports it.
} finally {
  await browser.close();
}

const foreign = requests.filter((u) => !u.startsWith(`${origin}/`) && !u.startsWith(`${wsOrigin}/`));
if (foreign.length) failures.push(`requests to other origins: ${foreign.join(', ')}`);
if (consoleErrors.length) failures.push(`console errors: ${consoleErrors.join(' | ')}`);
console.log(`${requests.length} requests, all checked against ${origin}`);
if (failures.length) {
  console.error(failures.map((f) => `browser test: ${f}`).join('\n'));
  process.exit(1);
}
console.log('browser test: all checks passed');

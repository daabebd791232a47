// Measures the vintage triangle page in headless Chromium against a server over a store made
// by `tradeledger generate` (not run by CI: the store takes minutes to import).
//
//   tradeledger generate gen.json && tradeledger import --data-dir DIR gen.json
//   tradeledger serve --data-dir DIR --no-fixtures &
//   node tests/browser/triangle.mjs <base-url> <dataset> <from> <to>
//
// Prints the time from navigation to the triangle drawn, and the page's own measure of
// fetching and drawing it, for a cold and a warm load.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const [base, dataset, from, to] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  if (process.env.TRADELEDGER_APP_FROM_DISK === '1') {
    const dir = join(dirname(fileURLToPath(import.meta.url)), '../../src/web/app');
    await page.route(/\/assets\/app\.[0-9a-f]+\.js$/, (r) => r.fulfill({ body: readFileSync(join(dir, 'app.js')), contentType: 'text/javascript' }));
    await page.route(/\/assets\/app\.[0-9a-f]+\.css$/, (r) => r.fulfill({ body: readFileSync(join(dir, 'app.css')), contentType: 'text/css' }));
  }
  page.setDefaultTimeout(120_000);
  for (const run of ['cold', 'warm']) {
    const url = `${base}/datasets/${encodeURIComponent(dataset)}/revisions?from=${from}&to=${to}` + (process.env.COLUMNS_ALL ? '&columns=all' : '');
    const start = Date.now();
    await page.goto(url);
    await page.locator('#triangle').waitFor();
    const wall = Date.now() - start;
    const m = await page.evaluate(() => ({
      rows: document.querySelectorAll('#triangle tbody tr').length,
      columns: document.querySelectorAll('#triangle thead th').length - 1,
      pageMs: Number(document.getElementById('app').dataset.triangleMs),
      renderMs: Number(document.getElementById('app').dataset.renderMs),
      drawnAt: Math.round((() => { const e = performance.getEntriesByName('tradeledger:triangle').pop(); return e.startTime + e.duration; })()),
    }));
    console.log(`${run}: ${m.rows} periods x ${m.columns} releases: drawn ${m.drawnAt} ms after navigation started (${wall} ms as the driver saw it); page: ${m.pageMs} ms fetching and drawing, ${m.renderMs} ms drawing`);
  }
} finally {
  await browser.close();
}

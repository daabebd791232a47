// The SDMX links of the dataset and figure pages, in headless Chromium against a tradeledger
// server started with the fixtures.
//
//   node tests/browser/sdmx-links.mjs <base-url> <screenshot-dir>
//
// Each page, at the head and pinned (asOf a revision, asOf a time), links its SDMX-CSV,
// SDMX-ML (GenericData) and SDMX-JSON URLs under /sdmx/2.1/ (format=...), latest and, when
// pinned, as of the page's point. The CSV and GenericData links answer 200 with the page's
// figure (the latest -4610 of the 2025-S1 total; -4530 as of the preliminary release); the
// JSON link answers the figure too. No console error. Prints `links=<json>` per page.
// Exits 0 when all hold, 1 with the reasons otherwise. CHROMIUM overrides the browser.
import { chromium } from 'playwright-core';

const args = process.argv.slice(2);
args.pop(); // the screenshot directory: nothing to draw here
const [base] = args;
if (!base) {
  console.error('usage: node sdmx-links.mjs <base-url> <screenshot-dir>');
  process.exit(2);
}
const DS = 'KR_KNOWLEDGE_SERVICES';
const failures = [];
const consoleErrors = [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
const page = await context.newPage();
page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
page.on('pageerror', (e) => consoleErrors.push(String(e)));

function check(ok, what) {
  if (!ok) failures.push(what);
}

/** The rows of the page's SDMX links: class and [format, href] of each link. */
async function sdmxLinks(url) {
  await page.goto(base + url);
  await page.waitForSelector('#sdmx-links li.sdmx-latest a', { timeout: 30_000 });
  return page.$$eval('#sdmx-links li', (lis) =>
    lis.map((li) => ({
      row: li.className,
      links: [...li.querySelectorAll('a')].map((a) => [a.dataset.format, a.getAttribute('href')]),
    })),
  );
}

/** Fetches a link; checks status 200 and that the body holds `needle` (and not `absent`). */
async function answers(href, needle, absent, what) {
  const r = await page.request.get(base + href);
  const body = await r.text();
  check(r.status() === 200, `${what}: ${href} answered ${r.status()}: ${body.slice(0, 300)}`);
  check(body.includes(needle), `${what}: ${href} does not hold ${needle}: ${body.slice(0, 600)}`);
  if (absent) check(!body.includes(absent), `${what}: ${href} holds ${absent}`);
}

const cases = [
  {
    url: `/datasets/${DS}?period=2025-S1`,
    key: 'all',
    latest: '-4610',
  },
  {
    url: `/datasets/${DS}?period=2025-S1&asOf=2`,
    key: 'all',
    latest: '-4610',
    pinned: '-4530',
    params: ['asOf=2025-09-03T03%3A00%3A00%2B00%3A00', 'knownAt='],
  },
  {
    url: `/datasets/${DS}/figures/_T._T._T/2025-S1`,
    key: 'S._T._T._T.BAL',
    latest: '-4610',
    shown: true,
  },
  {
    url: `/datasets/${DS}/figures/_T._T._T/2025-S1?asOf=2025-10-01T00:00:00Z`,
    key: 'S._T._T._T.BAL',
    latest: '-4610',
    pinned: '-4530',
    params: ['asOf=2025-10-01T00%3A00%3A00Z'],
    shown: true,
  },
];

try {
  for (const c of cases) {
    const rows = await sdmxLinks(c.url);
    console.log(`links=${JSON.stringify({ page: c.url, rows })}`);
    const want = c.pinned ? ['sdmx-latest', 'sdmx-pinned'] : ['sdmx-latest'];
    check(
      JSON.stringify(rows.map((r) => r.row)) === JSON.stringify(want),
      `${c.url}: rows ${JSON.stringify(rows.map((r) => r.row))}, expected ${JSON.stringify(want)}`,
    );
    const prefix = `/sdmx/2.1/data/${DS}/${c.key}?startPeriod=2025-S1&endPeriod=2025-S1&format=`;
    const key30 = c.key === 'all' ? '*' : c.key;
    const prefix30 = `/sdmx/3.0/data/dataflow/*/${DS}/*/${key30}?c%5BTIME_PERIOD%5D=2025-S1&format=jsondata`;
    for (const r of rows) {
      const formats = r.links.map(([f]) => f);
      check(
        JSON.stringify(formats) === JSON.stringify(['csvdata', 'genericdata', 'jsondata']),
        `${c.url}: ${r.row} formats ${JSON.stringify(formats)}`,
      );
      const pinned = r.row === 'sdmx-pinned';
      for (const [format, href] of r.links) {
        const want = format === 'jsondata' ? prefix30 : prefix + format;
        check(href.startsWith(want), `${c.url}: ${r.row} ${format} link ${href} does not start with ${want}`);
        for (const p of c.params || []) {
          check(href.includes('&' + p) === pinned, `${c.url}: ${r.row} ${format} link ${href} and &${p}`);
        }
      }
      const value = pinned ? c.pinned : c.latest;
      const other = pinned ? c.latest : c.pinned;
      const [, csv] = r.links.find(([f]) => f === 'csvdata');
      await answers(csv, `,_T,_T,_T,BAL,2025-S1,${value},`, other && `,_T,_T,_T,BAL,2025-S1,${other},`, `${c.url} ${r.row} CSV`);
      const [, json] = r.links.find(([f]) => f === 'jsondata');
      await answers(json, `[${value},`, other && `[${other},`, `${c.url} ${r.row} SDMX-JSON`);
      const [, xml] = r.links.find(([f]) => f === 'genericdata');
      await answers(xml, `<generic:ObsValue value="${value}"/>`, other && `<generic:ObsValue value="${other}"/>`, `${c.url} ${r.row} SDMX-ML`);
    }
    if (c.shown) {
      // The figure the page shows is the one its links give.
      const shown = (await page.textContent('#latest-value')).replace(/[^0-9]/g, '');
      const value = (c.pinned || c.latest).replace(/[^0-9]/g, '');
      check(shown === value, `${c.url}: the page shows ${shown}, its links ${value}`);
    }
  }
} catch (e) {
  failures.push(`error: ${e.stack || e}`);
}
check(consoleErrors.length === 0, `console errors: ${consoleErrors.join(' | ')}`);
await browser.close();
if (failures.length) {
  console.error(failures.map((f) => 'FAIL ' + f).join('\n'));
  process.exit(1);
}
console.log('all checks passed');

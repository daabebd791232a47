// The web interface of tradeledger (issue 15): one script for every page, picked by the
// shell's `data-page`. It only reads: queries go to POST /graphql of the page's own origin,
// live updates come from the `releasePublished` subscription over graphql-transport-ws
// (`graphqlWs`, loaded before this file), charts are drawn by uPlot (`uPlot`, on the figure
// page only). Nothing is requested from any other origin.
//
// With `--read-tokens` the API answers 401; the page then asks for a token and keeps it in
// sessionStorage only (gone when the tab closes), sending it as `Authorization: Bearer` and
// in the WebSocket's `connection_init`.
//
// Decimals stay strings from the API to the screen: Intl.NumberFormat formats a string as
// the exact decimal it spells.
(function () {
  'use strict';

  const root = document.getElementById('app');
  const PAGE = root.dataset.page;
  const params = new URLSearchParams(location.search);
  /** A query parameter, null when absent or empty (a form sends empty fields). */
  const param = (name) => (params.get(name) || '').trim() || null;
  const TOKEN_KEY = 'tradeledger.readToken';
  const LANG = navigator.language || 'en';
  const numberFormat = new Intl.NumberFormat(LANG, { maximumFractionDigits: 20 });
  const timeFormat = new Intl.DateTimeFormat(LANG, {
    dateStyle: 'medium',
    timeStyle: 'short',
    timeZone: 'UTC',
  });
  const MULTIPLIERS = { 0: '', 3: 'thousands', 6: 'millions', 9: 'billions', 12: 'trillions' };
  const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

  // ---------------------------------------------------------------- DOM helpers

  /** An element with attributes (`on...` are listeners) and children (text is text). */
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v == null || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
        else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid == null || kid === false) continue;
      el.append(kid instanceof Node ? kid : String(kid));
    }
    return el;
  }

  function render(...kids) {
    root.replaceChildren(...kids.flat(Infinity).filter((k) => k != null && k !== false));
  }

  /** A table in a scrollable region that the keyboard can reach. */
  function tableWrap(label, table) {
    return h('div', { class: 'table-wrap', role: 'region', 'aria-label': label, tabindex: 0 }, table);
  }

  function isNegative(v) {
    return typeof v === 'string' && v.trim().startsWith('-') && !/^-0*(\.0*)?$/.test(v.trim());
  }

  function fmt(v) {
    return numberFormat.format(v);
  }

  /** A figure: locale digits, a minus sign and the word "deficit" for a negative value. */
  function value(v) {
    if (v == null) return h('span', { class: 'na', title: 'no value' }, '—');
    if (isNegative(v)) {
      return h(
        'span',
        { class: 'num neg' },
        fmt(v),
        ' ',
        h('span', { class: 'deficit', title: 'negative balance: a deficit (debits exceed credits)' }, 'deficit'),
      );
    }
    return h('span', { class: 'num' }, fmt(v));
  }

  /** A change: signed, with an arrow that says the direction without colour. */
  function delta(v) {
    if (v == null) return h('span', { class: 'na', title: 'no earlier value' }, '—');
    if (/^-?0*(\.0*)?$/.test(v.trim())) return h('span', { class: 'num zero' }, fmt(v));
    const down = isNegative(v);
    return h(
      'span',
      { class: down ? 'num delta down' : 'num delta up', title: down ? 'revised down' : 'revised up' },
      h('span', { 'aria-hidden': 'true' }, down ? '▼ ' : '▲ '),
      down ? fmt(v) : '+' + fmt(v),
    );
  }

  function time(s) {
    if (!s) return h('span', { class: 'na' }, '—');
    const d = new Date(s);
    return h('time', { datetime: s, title: s }, isNaN(d) ? s : timeFormat.format(d) + ' UTC');
  }

  function badge(status) {
    return h('span', { class: 'badge badge-' + String(status).toLowerCase() }, status);
  }

  /**
   * The badge of one version of a figure: its release's status, except where a later release
   * published the figure again with the same value (a delta of 0), which did not revise it.
   */
  function versionBadge(v) {
    if (v.version > 1 && v.delta != null && /^-?0*(\.0*)?$/.test(v.delta.trim())) {
      return h(
        'span',
        { class: 'badge badge-unchanged', title: `published again unchanged by a ${v.status} release` },
        'UNCHANGED',
      );
    }
    return badge(v.status);
  }

  function isSynthetic(release) {
    return !!release && /SYNTHETIC/.test((release.title || '') + ' ' + (release.source || ''));
  }

  // A back-fill: an older vintage recorded after later ones, placed by its publication time.
  function backfillTag(item) {
    return item && item.backfilled
      ? h(
          'span',
          {
            class: 'tag backfill',
            title: 'Back-filled: published before releases the ledger had already recorded; placed here by its publication time',
          },
          'back-filled',
        )
      : null;
  }

  // The reason a release gave for its revisions: "Error correction: the note".
  function reasonNote(reason) {
    if (!reason) return null;
    const kind = { ROUTINE: 'Routine revision', METHODOLOGICAL: 'Methodological revision', ERROR_CORRECTION: 'Error correction' }[reason.kind] || reason.kind;
    return h('div', { class: 'small revision-reason' }, reason.note ? `${kind}: ${reason.note}` : kind);
  }

  function syntheticTag(release) {
    return isSynthetic(release)
      ? h(
          'span',
          { class: 'tag synthetic', title: 'SYNTHETIC: invented test data, not a release the publisher made' },
          'synthetic',
        )
      : null;
  }

  function hash(hex) {
    return h('code', { class: 'hash', title: hex }, hex ? hex.slice(0, 12) + '…' : '—');
  }

  function unitLabel(ds) {
    const m = MULTIPLIERS[ds.unitMultiplier];
    if (m === undefined) return `${ds.unit} × 10^${ds.unitMultiplier}`;
    return m ? `${ds.unit} ${m}` : ds.unit;
  }

  function enc(s) {
    return encodeURIComponent(s);
  }

  function datasetUrl(id, period, asOf) {
    const q = new URLSearchParams();
    if (period) q.set('period', period);
    if (asOf) q.set('asOf', asOf);
    const qs = q.toString();
    return `/datasets/${enc(id)}` + (qs ? '?' + qs : '');
  }

  function figureUrl(id, key, period, asOf) {
    return `/datasets/${enc(id)}/figures/${enc(key)}/${enc(period)}` + (asOf ? '?asOf=' + enc(asOf) : '');
  }

  function releaseLink(release, text) {
    return h('a', { href: '/releases/' + enc(release.id) }, text || release.title);
  }

  /** The path's segments after the first `skip`, decoded. */
  function segments() {
    return location.pathname.split('/').filter(Boolean).map(decodeURIComponent);
  }

  // ---------------------------------------------------------------- messages

  function errorBox(message) {
    return h('div', { class: 'error', role: 'alert' }, h('strong', null, 'Error: '), message);
  }

  function notFound(what) {
    document.title = 'Not found · tradeledger';
    render(
      h('h1', null, 'Not found'),
      h('p', { class: 'not-found', role: 'alert' }, what, ' ', h('a', { href: '/' }, 'See the datasets.')),
    );
  }

  let noticeBox = null;
  /** A visible, announced notice of what a live update changed. */
  function notice(...kids) {
    if (!noticeBox || !noticeBox.isConnected) {
      noticeBox = h('div', { class: 'notice', role: 'status', 'aria-live': 'polite', id: 'live-notice' });
      root.prepend(noticeBox);
    }
    noticeBox.replaceChildren(h('strong', null, 'Updated: '), ...kids, ' ', time(new Date().toISOString()));
  }

  // ---------------------------------------------------------------- the API

  class AuthError extends Error {}
  class ApiError extends Error {
    constructor(message, codes) {
      super(message);
      this.codes = codes;
    }
  }

  /** Longest GET URL the page sends; a longer request goes as a POST. */
  const MAX_GET_URL = 2000;

  /** SHA-256 of `text` in hex, or null where the browser gives no crypto.subtle (plain HTTP). */
  async function queryHash(text) {
    if (!window.crypto || !crypto.subtle) return null;
    try {
      const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
      return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
    } catch {
      return null;
    }
  }

  /**
   * Runs a query with GET, so that the answer can be cached: as an automatic persisted query
   * (its hash; the text only when the server asks for it), or with its text, or as a POST
   * when the URL would be too long. `cache: 'no-cache'` makes the browser revalidate what it
   * holds (a 304 that runs no query), so a page that reacts to a release never shows an
   * answer older than it.
   */
  async function send(query, variables, headers) {
    const url = (params) => {
      const search = new URLSearchParams();
      for (const [k, v] of Object.entries(params)) if (v != null) search.set(k, v);
      return '/graphql?' + search;
    };
    const vars = variables ? JSON.stringify(variables) : null;
    const post = (extensions) =>
      fetch('/graphql', {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({ query, variables, extensions }),
      });
    const get = (target) => fetch(target, { headers, cache: 'no-cache' });
    const hash = await queryHash(query);
    if (hash) {
      const extensions = { persistedQuery: { version: 1, sha256Hash: hash } };
      const ext = JSON.stringify(extensions);
      const byHash = url({ variables: vars, extensions: ext });
      if (byHash.length <= MAX_GET_URL) {
        const response = await get(byHash);
        const notFound = await response
          .clone()
          .json()
          .then((b) => (b.errors || []).some((e) => e.extensions && e.extensions.code === 'PERSISTED_QUERY_NOT_FOUND'))
          .catch(() => false);
        if (!notFound) return response;
        const full = url({ query, variables: vars, extensions: ext });
        return full.length <= MAX_GET_URL ? get(full) : post(extensions);
      }
    }
    const full = url({ query, variables: vars });
    return full.length <= MAX_GET_URL ? get(full) : post(undefined);
  }

  async function gql(query, variables) {
    // application/json: Apollo's protocol answers an unknown hash with 200 there (a 404 with
    // application/graphql-response+json, which the browser would log as a failed load).
    const headers = { accept: 'application/json' };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.authorization = 'Bearer ' + token;
    const response = await send(query, variables, headers);
    let body;
    try {
      body = await response.json();
    } catch {
      throw new ApiError(`the server answered HTTP ${response.status} without a GraphQL response`, []);
    }
    const errors = body.errors || [];
    const codes = errors.map((e) => e.extensions && e.extensions.code);
    // Fields that take the same argument fail with the same message: say it once.
    const messages = [...new Set(errors.map((e) => e.message))].join('; ');
    if (response.status === 401 || codes.includes('UNAUTHENTICATED')) {
      throw new AuthError(messages || 'this server needs a read token');
    }
    if (errors.length) throw new ApiError(messages, codes);
    return body.data;
  }

  let wsClient = null;
  /** Subscribes to `query`; `onData` gets each result's data. Returns the unsubscribe function. */
  function subscribe(query, variables, onData) {
    if (!wsClient) {
      wsClient = graphqlWs.createClient({
        url: (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/graphql/ws',
        connectionParams: () => {
          const token = sessionStorage.getItem(TOKEN_KEY);
          return token ? { authorization: 'Bearer ' + token } : {};
        },
        retryAttempts: 1000,
        shouldRetry: () => true,
        on: {
          connected: () => setLive('live'),
          closed: () => setLive('reconnecting'),
        },
      });
    }
    return wsClient.subscribe(
      { query, variables },
      {
        next: (message) => message.data && onData(message.data),
        error: () => setLive('reconnecting'),
        complete: () => {},
      },
    );
  }

  const liveBadge = h('p', { class: 'live', id: 'live-state' });
  function setLive(state) {
    const text = {
      live: 'Live: this page updates when a release is published.',
      connecting: 'Connecting for live updates…',
      reconnecting: 'Live updates interrupted; reconnecting…',
    }[state];
    liveBadge.dataset.state = state;
    liveBadge.textContent = text;
  }

  function pinnedBadge(asOf) {
    return h(
      'p',
      { class: 'live pinned', id: 'live-state', 'data-state': 'pinned' },
      `Pinned as of ${asOf}: this page shows the ledger at that point and does not update. `,
      h('a', { href: location.pathname + withoutParam('asOf') }, 'Show the latest'),
    );
  }

  function withoutParam(name) {
    const q = new URLSearchParams(location.search);
    q.delete(name);
    const s = q.toString();
    return s ? '?' + s : '';
  }

  /** `asOf` as the API's `AsOf` input: a revision number, a release id or an RFC 3339 time. */
  function parseAsOf(text) {
    const s = (text || '').trim();
    if (!s) return null;
    if (/^\d+$/.test(s)) return { revision: Number(s) };
    if (UUID_RE.test(s)) return { release: s };
    if (/^\d{4}-\d{2}-\d{2}T/.test(s) && !isNaN(Date.parse(s))) return { publishedAt: s };
    throw new ApiError(
      `asOf “${s}” is not a revision number, a release id (UUID) or an RFC 3339 time such as 2025-10-01T00:00:00Z`,
      ['BAD_USER_INPUT'],
    );
  }

  function tokenForm(message) {
    document.title = 'Token needed · tradeledger';
    const input = h('input', {
      id: 'token',
      name: 'token',
      type: 'password',
      autocomplete: 'off',
      required: true,
      spellcheck: 'false',
    });
    const had = sessionStorage.getItem(TOKEN_KEY);
    render(
      h('h1', null, 'A read token is needed'),
      h(
        'p',
        null,
        'This server protects its data with tokens (',
        h('code', null, '--read-tokens'),
        '). Enter a read token; it is kept for this tab only (session storage) and sent to this server alone.',
      ),
      had ? errorBox(message) : null,
      h(
        'form',
        {
          class: 'token-form',
          onsubmit: (e) => {
            e.preventDefault();
            sessionStorage.setItem(TOKEN_KEY, input.value.trim());
            location.reload();
          },
        },
        h('label', { for: 'token' }, 'Token'),
        input,
        h('button', { type: 'submit' }, 'Use this token'),
      ),
    );
    input.focus();
  }

  /** Runs a page's loader and shows what went wrong, if anything. */
  async function run(load) {
    try {
      await load();
      performance.mark('tradeledger:rendered');
    } catch (e) {
      if (e instanceof AuthError) return tokenForm(e.message);
      render(h('h1', null, 'Something went wrong'), errorBox(e.message || String(e)));
    }
  }

  // ---------------------------------------------------------------- shared queries

  const DATASET_FIELDS = `id name publisher description unit unitMultiplier releaseCount observationCount
    dimensions { id label position codes { code label parent } }`;

  function totalKey(ds) {
    return ds.dimensions.map(() => '_T').join('.');
  }

  function keyLabel(ds, key) {
    const codes = key.split('.');
    const parts = ds.dimensions
      .map((d, i) => {
        if (codes[i] === '_T') return null;
        const c = d.codes.find((c) => c.code === codes[i]);
        return c ? c.label : codes[i];
      })
      .filter(Boolean);
    return parts.length ? parts.join(', ') : 'Total';
  }

  // ---------------------------------------------------------------- page: /

  async function homePage() {
    document.title = 'Datasets · tradeledger';
    const data = await gql(`{ ledger { revision releaseCount } datasets { ${DATASET_FIELDS} } }`);
    const head = data.ledger.revision;
    const feed = await gql(
      `query($after: Int) { events(after: $after, first: 1000, kind: RELEASE_PUBLISHED) {
        nodes { revision release { id status title source publishedAt revisedCount observationCount dataset { id } } } } }`,
      { after: Math.max(0, head - 1000) },
    );
    const releases = feed.events.nodes
      .filter((n) => n.release)
      .map((n) => ({ revision: n.revision, ...n.release }))
      .reverse()
      .slice(0, 20);
    const datasetsBody = h('tbody', null, data.datasets.map(datasetRow));
    const datasetsTable = h(
      'table',
      { id: 'datasets' },
      h('caption', null, 'Datasets'),
      h(
        'thead',
        null,
        h('tr', null, ['Dataset', 'Publisher', 'Unit', 'Releases', 'Figures', 'Pages'].map((t) => h('th', { scope: 'col' }, t))),
      ),
      datasetsBody,
    );
    const feedBody = h('tbody', null, releases.map(releaseRow));
    const feedTable = h(
      'table',
      { id: 'release-feed' },
      h('caption', null, 'Latest releases, newest first'),
      h(
        'thead',
        null,
        h('tr', null, ['Revision', 'Status', 'Title', 'Published', 'Dataset', 'Revised figures'].map((t) => h('th', { scope: 'col' }, t))),
      ),
      feedBody,
    );
    setLive('connecting');
    render(
      h('h1', null, 'Datasets'),
      tableWrap('Datasets', datasetsTable),
      h('h2', null, 'Latest releases'),
      liveBadge,
      tableWrap('Latest releases', feedTable),
      data.datasets.length ? null : h('p', null, 'No dataset has been defined yet.'),
    );
    subscribe(
      `subscription($after: Int) { releasePublished(afterRevision: $after) {
        revision release { id status title source publishedAt revisedCount observationCount dataset { id } } } }`,
      { after: head },
      (d) => {
        const ev = d.releasePublished;
        const row = releaseRow({ revision: ev.revision, ...ev.release });
        row.classList.add('fresh');
        feedBody.prepend(row);
        while (feedBody.children.length > 20) feedBody.lastChild.remove();
        notice('new release ', releaseLink(ev.release), ` (${ev.release.status}, revision ${ev.revision}).`);
        gql(`{ datasets { ${DATASET_FIELDS} } }`)
          .then((d) => datasetsBody.replaceChildren(...d.datasets.map(datasetRow)))
          .catch((e) => notice('could not reload the datasets: ' + e.message));
      },
    );
  }

  function datasetRow(ds) {
    return h(
      'tr',
      null,
      h('th', { scope: 'row' }, h('a', { href: datasetUrl(ds.id) }, ds.name), h('br'), h('code', null, ds.id)),
      h('td', null, ds.publisher),
      h('td', null, unitLabel(ds)),
      h('td', { class: 'n' }, fmt(ds.releaseCount)),
      h('td', { class: 'n' }, fmt(ds.observationCount)),
      h(
        'td',
        null,
        h('a', { href: datasetUrl(ds.id) }, 'Breakdowns'),
        ' · ',
        h('a', { href: `/datasets/${enc(ds.id)}/revisions` }, 'Vintage triangle'),
      ),
    );
  }

  function releaseRow(r) {
    return h(
      'tr',
      { 'data-revision': r.revision },
      h('td', { class: 'n' }, r.revision),
      h('td', null, badge(r.status)),
      h('th', { scope: 'row' }, releaseLink(r), ' ', syntheticTag(r)),
      h('td', null, time(r.publishedAt)),
      h('td', null, h('a', { href: datasetUrl(r.dataset.id) }, r.dataset.id)),
      h('td', { class: 'n' }, `${fmt(r.revisedCount)} of ${fmt(r.observationCount)}`),
    );
  }

  // ---------------------------------------------------------------- page: /datasets/{id}

  /** Every period the dataset's total has a figure for (as of `asOf`), oldest first. */
  async function periodsOf(ds, asOf) {
    const periods = [];
    let after = null;
    for (let page = 0; page < 20; page++) {
      const d = await gql(
        `query($id: ID!, $key: String!, $asOf: AsOf, $after: String) {
          observations(dataset: $id, filter: { key: $key }, asOf: $asOf, first: 1000, after: $after) {
            nodes { period } pageInfo { hasNextPage endCursor } } }`,
        { id: ds.id, key: totalKey(ds), asOf, after },
      );
      periods.push(...d.observations.nodes.map((n) => n.period));
      if (!d.observations.pageInfo.hasNextPage) break;
      after = d.observations.pageInfo.endCursor;
    }
    return periods;
  }

  const FIGURE_FIELDS = `key value status preliminaryValue revisionFromPreliminary revisionCount revision
    release { id title source status }`;

  // The SDMX data URLs of what a page shows, for one period: SDMX-CSV and SDMX-ML
  // GenericData from SDMX-REST 1.5 (`/sdmx/2.1/`), SDMX-JSON from SDMX-REST 2.2
  // (`/sdmx/3.0/`), at the head and, on a pinned page, at its point in
  // time: `asOf` for a publication time; for a revision or a release, `asOf` the publication
  // time of the release recorded at that revision and `knownAt` its recording time (what the
  // ledger showed then, of what had been published by then). `key` is an SDMX series key,
  // or `all` for the whole dataflow.
  const SDMX_FORMATS = [
    ['csvdata', 'SDMX-CSV'],
    ['genericdata', 'SDMX-ML'],
    ['jsondata', 'SDMX-JSON'],
  ];

  // The SDMX frequency code of a period: `2025-S1` is S, `2025-Q3` Q, `2025-07` M, `2025` A.
  function sdmxFreq(period) {
    const m = /^\d{4}-?([SHQ])/i.exec(period);
    if (m) return m[1].toUpperCase() === 'Q' ? 'Q' : 'S';
    return /^\d{4}$/.test(period) ? 'A' : 'M';
  }

  async function sdmxPoint(asOf, revision) {
    if (!asOf) return null;
    if (asOf.publishedAt) return [['asOf', asOf.publishedAt]];
    if (revision == null) return null;
    const d = await gql(
      'query($after: Int) { events(after: $after, first: 1) { nodes { recordedAt release { publishedAt } } } }',
      { after: revision - 1 },
    );
    const ev = d.events.nodes[0];
    if (!ev) return null;
    // Several events of one group commit share a recording time: the publication time of
    // the release at that revision leaves out the later ones.
    return ev.release ? [['asOf', ev.release.publishedAt], ['knownAt', ev.recordedAt]] : [['knownAt', ev.recordedAt]];
  }

  function sdmxLinks(id, key, period, point) {
    const base = `/sdmx/2.1/data/${enc(id)}/${enc(key)}?startPeriod=${enc(period)}&endPeriod=${enc(period)}`;
    // SDMX-JSON is served by the SDMX-REST 2.2 API, where a period is a component filter.
    const key30 = key === 'all' ? '*' : key;
    const base30 = `/sdmx/3.0/data/dataflow/*/${enc(id)}/*/${enc(key30)}?c%5BTIME_PERIOD%5D=${enc(period)}`;
    const row = (label, extra, cls) =>
      h(
        'li',
        { class: cls },
        `${label}: `,
        ...SDMX_FORMATS.flatMap(([format, name], i) => [
          i ? ' · ' : '',
          h('a', { href: `${format === 'jsondata' ? base30 : base}&format=${format}${extra}`, 'data-format': format }, name),
        ]),
      );
    return h(
      'div',
      { class: 'sdmx-links', id: 'sdmx-links' },
      'For SDMX clients (SDMX-REST 1.5 and 2.2, ',
      h('a', { href: 'https://github.com/sdmx-twg/sdmx-rest' }, 'the standard'),
      '):',
      h(
        'ul',
        null,
        row('latest', '', 'sdmx-latest'),
        point
          ? row(
              `as of this page (${point.map(([k, v]) => `${k} ${v}`).join(', ')})`,
              point.map(([k, v]) => `&${k}=${enc(v)}`).join(''),
              'sdmx-pinned',
            )
          : null,
      ),
    );
  }

  async function datasetPage() {
    const id = segments()[1];
    const asOfText = param('asOf');
    const asOf = parseAsOf(asOfText);
    const first = await gql(`query($id: ID!) { dataset(id: $id) { ${DATASET_FIELDS} } }`, { id });
    const ds = first.dataset;
    if (!ds) return notFound(`There is no dataset “${id}”.`);
    document.title = `${ds.name} · tradeledger`;
    let unsubscribe = null;

    async function load(update, fresh) {
      // The periods, and suggestions for the asOf picker (the dataset's releases among the
      // last 500 events), fetched side by side.
      const [periods, recent] = await Promise.all([
        periodsOf(ds, asOf),
        gql('{ ledger { revision } }').then((d) =>
          gql(
            `query($id: ID!, $after: Int) { events(after: $after, first: 500, dataset: $id, kind: RELEASE_PUBLISHED) {
              nodes { revision release { title publishedAt status } } } }`,
            { id, after: Math.max(0, d.ledger.revision - 500) },
          ),
        ),
      ]);
      const suggestions = recent.events.nodes.filter((n) => n.release).slice(-50).reverse();
      const period = param('period') || periods[periods.length - 1];
      const vars = { id, period, asOf };
      const fields = ds.dimensions
        .map(
          (d, i) => `b${i}: breakdown(dataset: $id, dimension: $d${i}, period: $period, asOf: $asOf) {
            dimension total { ${FIGURE_FIELDS} } items { ${FIGURE_FIELDS} } sumOfItems residual asOfRevision }`,
        )
        .join('\n');
      const defs = ds.dimensions.map((_, i) => `$d${i}: String!`).join(', ');
      ds.dimensions.forEach((d, i) => (vars['d' + i] = d.id));
      const data = period
        ? await gql(`query($id: ID!, $period: Period!, $asOf: AsOf, ${defs}) { ${fields} }`, vars)
        : {};
      const breakdowns = ds.dimensions.map((d, i) => ({ dim: d, b: data['b' + i] }));
      const revision = breakdowns.length && breakdowns[0].b ? breakdowns[0].b.asOfRevision : null;
      const synthetic = breakdowns.some(
        ({ b }) => b && [b.total, ...b.items].some((f) => f && isSynthetic(f.release)),
      );
      const sdmxAt = period ? await sdmxPoint(asOf, revision) : null;

      const periodSelect = h(
        'select',
        { id: 'period', name: 'period', onchange: (e) => e.target.form.requestSubmit() },
        periods
          .slice()
          .reverse()
          .map((p) => h('option', { value: p, selected: p === period }, p)),
      );
      const form = h(
        'form',
        { class: 'pickers', method: 'get', action: location.pathname },
        h('label', { for: 'period' }, 'Period'),
        periodSelect,
        h('label', { for: 'asOf' }, 'As of'),
        h('input', {
          id: 'asOf',
          name: 'asOf',
          value: asOfText || '',
          placeholder: 'latest (head)',
          title: 'a revision number, a release id, or an RFC 3339 time',
          size: 28,
          list: 'asOf-releases',
        }),
        h(
          'datalist',
          { id: 'asOf-releases' },
          suggestions.map((n) =>
            h('option', { value: String(n.revision) }, `revision ${n.revision}: ${n.release.status}, ${n.release.publishedAt.slice(0, 10)}, ${n.release.title}`),
          ),
        ),
        h('button', { type: 'submit' }, 'Show'),
      );
      const status = asOf ? pinnedBadge(asOfText) : liveBadge;
      render(
        h('h1', null, ds.name),
        h(
          'p',
          { class: 'meta' },
          h('code', null, ds.id),
          ` · ${ds.publisher} · figures in `,
          h('strong', { id: 'unit' }, unitLabel(ds)),
          '; a deficit is negative and marked “deficit”.',
        ),
        ds.description ? h('p', null, ds.description) : null,
        h(
          'p',
          { class: 'links' },
          h('a', { href: `/datasets/${enc(id)}/revisions` }, 'Vintage triangle and revision statistics'),
          ' · ',
          h('a', { href: `/audit?dataset=${enc(id)}` }, 'Audit log of this dataset'),
        ),
        period ? sdmxLinks(id, 'all', period, sdmxAt) : null,
        form,
        status,
        revision != null
          ? h('p', { class: 'asof' }, `Period ${period}, as of ledger revision ${revision}.`)
          : null,
        synthetic
          ? h(
              'p',
              { class: 'synthetic-note', role: 'note' },
              h('strong', null, 'Note: '),
              'some figures below were set by a release marked SYNTHETIC (invented test data, not published by ',
              ds.publisher,
              '). They are labelled “synthetic”; the Preliminary column keeps the first published figures.',
            )
          : null,
        period
          ? breakdowns.map(({ dim, b }) => breakdownTable(ds, dim, b, period, asOfText, fresh))
          : h('p', null, 'This dataset has no figures yet.'),
      );
      if (update) notice(...update);
      return revision;
    }

    const revision = await load(null);
    if (!asOf) {
      setLive('connecting');
      unsubscribe = subscribe(
        `subscription($id: ID!, $after: Int) { releasePublished(dataset: $id, afterRevision: $after) {
          revision release { id title status revisedCount observationCount } } }`,
        { id, after: revision || 0 },
        (d) => {
          const ev = d.releasePublished;
          load([
            'release ',
            releaseLink(ev.release),
            ` (${ev.release.status}, revision ${ev.revision}) was published; it revised ${ev.release.revisedCount} of its ${ev.release.observationCount} figures. The tables show the new head; figures it set are marked “updated”.`,
          ], ev.revision).catch((e) => notice('could not reload: ' + e.message));
        },
      );
    }
    return unsubscribe;
  }

  function breakdownTable(ds, dim, b, period, asOf, fresh) {
    const caption = `${dim.label}: ${period}, ${unitLabel(ds)}`;
    const head = h(
      'thead',
      null,
      h(
        'tr',
        null,
        h('th', { scope: 'col' }, dim.label),
        h('th', { scope: 'col', class: 'n' }, `Value (${unitLabel(ds)})`),
        h('th', { scope: 'col' }, 'Status'),
        h('th', { scope: 'col', class: 'n' }, 'Preliminary'),
        h('th', { scope: 'col', class: 'n' }, 'Revision from preliminary'),
        h('th', { scope: 'col' }, 'Set by release'),
      ),
    );
    const row = (f, label, cls) =>
      h(
        'tr',
        { class: f.revision === fresh ? cls + ' fresh' : cls, 'data-key': f.key },
        h(
          'th',
          { scope: 'row' },
          h('a', { href: figureUrl(ds.id, f.key, period, asOf) }, label),
          f.revision === fresh ? [' ', h('span', { class: 'tag updated', title: 'set by the release just published' }, 'updated')] : null,
        ),
        h('td', { class: 'n value' }, value(f.value)),
        h('td', null, badge(f.status)),
        h('td', { class: 'n' }, value(f.preliminaryValue)),
        h('td', { class: 'n' }, delta(f.revisionFromPreliminary)),
        h('td', null, releaseLink(f.release), ' ', syntheticTag(f.release)),
      );
    const label = (key) => {
      const code = key.split('.')[dim.position];
      const c = dim.codes.find((c) => c.code === code);
      return c ? c.label : code;
    };
    const rows = [];
    if (b && b.total) rows.push(row(b.total, 'Total: ' + label(b.total.key), 'total'));
    else rows.push(h('tr', { class: 'total' }, h('th', { scope: 'row' }, 'Total'), h('td', { colspan: 5 }, 'not published')));
    for (const item of b ? b.items : []) rows.push(row(item, label(item.key), 'item'));
    const summary = (cls, text, v, title) =>
      h(
        'tr',
        { class: cls },
        h('th', { scope: 'row', title }, text),
        h('td', { class: 'n value' }, value(v)),
        h('td', { colspan: 4, class: 'explain' }, title),
      );
    rows.push(summary('sum', 'Sum of items', b ? b.sumOfItems : null, 'the items listed above, added up'));
    rows.push(
      summary(
        'residual',
        'Residual',
        b ? b.residual : null,
        'total minus the sum of the items: the part the listed items do not cover (other)',
      ),
    );
    return h(
      'section',
      { class: 'breakdown' },
      h('h2', null, dim.label),
      tableWrap(caption, h('table', { id: 'breakdown-' + dim.id }, h('caption', null, caption), head, h('tbody', null, rows))),
    );
  }

  // ---------------------------------------------------------------- page: a figure

  async function figurePage() {
    const [, id, , key, period] = segments();
    const asOfText = param('asOf');
    const asOf = parseAsOf(asOfText);
    const first = await gql(`query($id: ID!) { dataset(id: $id) { ${DATASET_FIELDS} } }`, { id });
    const ds = first.dataset;
    if (!ds) return notFound(`There is no dataset “${id}”.`);

    async function load(update) {
      const data = await gql(
        `query($id: ID!, $key: String!, $period: Period!, $asOf: AsOf) {
          history(dataset: $id, key: $key, period: $period, asOf: $asOf) {
            version revision status value previousValue delta publishedAt backfilled
            revisionReason { kind note }
            release { id title source actor recordedAt hash } }
          observation(dataset: $id, key: $key, period: $period, asOf: $asOf) {
            value status asOfRevision proof { revision treeSize leafIndex canonical hashes rootHash } }
          verifierKey }`,
        { id, key, period, asOf },
      );
      const versions = data.history;
      const name = keyLabel(ds, key);
      document.title = `${name}, ${period} · tradeledger`;
      if (!versions.length || !data.observation) {
        return notFound(`Nothing was published for ${key} in ${period}${asOf ? ' as of ' + asOfText : ''}.`);
      }
      const obs = data.observation;
      const checkpoint = (
        await gql(`query($size: Int) { checkpoint(treeSize: $size) { origin treeSize rootHash note } }`, {
          size: obs.proof.treeSize,
        })
      ).checkpoint;
      const sdmxAt = await sdmxPoint(asOf, obs.asOfRevision);
      const chartBox = h('div', {
        class: 'chart',
        id: 'chart',
        role: 'img',
        'aria-label': `Step chart of the ${versions.length} versions of ${name} for ${period}, against publication time; the table below lists the same values.`,
      });
      const verdict = h('p', { class: 'verdict pending', id: 'proof-verdict', role: 'status' }, 'checking…');
      const steps = h('ol', { class: 'proof-steps' });
      render(
        h(
          'p',
          { class: 'crumbs' },
          h('a', { href: datasetUrl(id, period, asOfText) }, ds.name),
          ` › ${period} · `,
          h('a', { href: `/datasets/${enc(id)}/revisions?key=${enc(key)}` }, 'vintages of this series'),
        ),
        h('h1', null, `${name}, ${period}`),
        h(
          'p',
          { class: 'meta' },
          'Series ',
          h('code', null, key),
          ` · ${unitLabel(ds)} · latest value `,
          h('strong', { id: 'latest-value' }, value(obs.value)),
          ' ',
          versionBadge(versions[versions.length - 1]),
          ` as of revision ${obs.asOfRevision}`,
        ),
        asOf ? pinnedBadge(asOfText) : liveBadge,
        sdmxLinks(id, `${sdmxFreq(period)}.${key}.BAL`, period, sdmxAt),
        h('h2', null, 'Versions'),
        chartBox,
        versionsTable(ds, versions),
        h('h2', null, 'Inclusion proof'),
        h(
          'p',
          null,
          `The event of the release that set the value (revision ${obs.proof.revision}) is checked here, in this browser (with WebCrypto, or the embedded @noble code where the page has none), to be leaf ${obs.proof.leafIndex} of the transparency log of ${obs.proof.treeSize} events, whose root the server's signed checkpoint states.`,
        ),
        verdict,
        steps,
        h(
          'p',
          { class: 'evidence' },
          'Offline evidence for an audit report: ',
          h('a', { href: `/tlog/proof/${obs.proof.revision}`, download: `revision-${obs.proof.revision}.tlog-proof` }, `revision-${obs.proof.revision}.tlog-proof`),
          ' (c2sp.org/tlog-proof) and the event it proves, ',
          h('a', { href: `/tlog/event/${obs.proof.revision}`, download: `revision-${obs.proof.revision}.event.json` }, `revision-${obs.proof.revision}.event.json`),
          ' (its canonical bytes); check them with ',
          h('code', null, 'tradeledger verify-proof --policy FILE PROOF EVENT'),
          '.',
        ),
        h('details', null, h('summary', null, 'The signed checkpoint and the verifier key'), h('pre', null, checkpoint.note), h('p', null, 'Verifier key (compare it with the one the log operator published): ', h('code', null, data.verifierKey))),
      );
      drawChart(chartBox, versions);
      const result = await verifyInclusion(obs.proof, checkpoint, data.verifierKey, { key, period, value: obs.value });
      steps.replaceChildren(
        ...result.steps.map(([ok, text]) => h('li', { class: ok ? 'ok' : 'bad' }, ok ? '✓ ' : '✗ ', text)),
      );
      verdict.className = 'verdict ' + (result.ok ? 'verified' : 'failed');
      verdict.textContent = result.ok ? 'verified' : 'FAILED: ' + result.why;
      if (update) notice(...update);
      return obs.asOfRevision;
    }

    const revision = await load(null);
    if (!asOf && revision != null) {
      setLive('connecting');
      subscribe(
        `subscription($id: ID!, $after: Int) { releasePublished(dataset: $id, afterRevision: $after) {
          revision release { id title status observations { key period } } } }`,
        { id, after: revision },
        (d) => {
          const ev = d.releasePublished;
          const touches = ev.release.observations.some((o) => o.key === key && o.period === period);
          load([
            'release ',
            releaseLink(ev.release),
            ` (revision ${ev.revision}) was published`,
            touches ? ' with a new version of this figure.' : '; it did not publish this figure (the proof is now against the new head).',
          ]).catch((e) => notice('could not reload: ' + e.message));
        },
      );
    }
  }

  function versionsTable(ds, versions) {
    return tableWrap(
      'Versions',
      h(
        'table',
        { id: 'versions' },
        h('caption', null, `Every version, oldest first (${unitLabel(ds)}); the chart above draws the same values`),
        h(
          'thead',
          null,
          h(
            'tr',
            null,
            ['Version', 'Revision', 'Release', 'Status', 'Published', 'Value', 'Delta', 'Actor', 'Recorded at', 'Hash'].map((t) =>
              h('th', { scope: 'col' }, t),
            ),
          ),
        ),
        h(
          'tbody',
          null,
          versions.map((v) =>
            h(
              'tr',
              { 'data-revision': v.revision },
              h('th', { scope: 'row' }, v.version === 1 ? '1 (preliminary)' : String(v.version)),
              h('td', { class: 'n' }, v.revision),
              h('td', null, releaseLink(v.release), ' ', syntheticTag(v.release), reasonNote(v.revisionReason)),
              h('td', null, versionBadge(v)),
              h('td', null, time(v.publishedAt), ' ', backfillTag(v)),
              h('td', { class: 'n value' }, value(v.value)),
              h('td', { class: 'n' }, delta(v.delta)),
              h('td', null, v.release.actor),
              h('td', null, time(v.release.recordedAt)),
              h('td', null, hash(v.release.hash)),
            ),
          ),
        ),
      ),
    );
  }

  /** A step line of value against publication time, the preliminary and each delta labelled. */
  function drawChart(box, versions) {
    const xs = versions.map((v) => Date.parse(v.publishedAt) / 1000);
    const ys = versions.map((v) => Number(v.value));
    // Carry the last value on to the right, so that the last step has a length.
    const span = Math.max(xs[xs.length - 1] - xs[0], 30 * 86400);
    xs.push(xs[xs.length - 1] + span * 0.25);
    ys.push(ys[ys.length - 1]);
    const last = xs.length - 1;
    const labels = versions.map((v) =>
      v.version === 1 ? 'preliminary ' + fmt(v.value) : (isNegative(v.delta) ? '▼ ' : '▲ +') + fmt(v.delta || '0'),
    );
    const width = () => Math.max(280, Math.min(box.clientWidth || 600, 900));
    const opts = {
      width: width(),
      height: 260,
      scales: {
        x: { time: true },
        // Room above and below the steps for the labels.
        y: { range: (u, min, max) => { const pad = Math.max((max - min) * 0.3, Math.abs(max) * 0.01, 1); return [min - pad, max + pad]; } },
      },
      legend: { show: false },
      cursor: { show: false },
      series: [
        {},
        {
          label: 'value',
          stroke: '#1f5fa8',
          width: 2,
          paths: uPlot.paths.stepped({ align: 1 }),
          points: { show: true, size: 9, fill: '#1f5fa8', filter: (u, si, show) => (show ? xs.map((_, i) => i).filter((i) => i !== last) : null) },
        },
      ],
      axes: [{}, { size: 70, values: (u, vals) => vals.map((v) => fmt(String(v))) }],
      hooks: {
        draw: [
          (u) => {
            const ctx = u.ctx;
            ctx.save();
            ctx.font = `${Math.round(12 * devicePixelRatio)}px system-ui, sans-serif`;
            ctx.fillStyle = '#1a1a1a';
            // On a narrow chart many versions' labels would overlap: a label that would touch
            // one already drawn is left out (the table below lists every delta). The boxes
            // drawn are kept on the chart, in CSS pixels, for the browser test.
            const drawn = [];
            const gap = 4 * devicePixelRatio;
            const lineHeight = 14 * devicePixelRatio;
            labels.forEach((text, i) => {
              const x = u.valToPos(xs[i], 'x', true);
              const y = u.valToPos(ys[i], 'y', true);
              const w = ctx.measureText(text).width;
              const left = i === 0 ? x + 6 : x - w / 2;
              const area = { left, right: left + w, top: y - 10 * devicePixelRatio - lineHeight, bottom: y - 10 * devicePixelRatio };
              const overlaps = drawn.some(
                (b) => area.left < b.right + gap && b.left < area.right + gap && area.top < b.bottom && b.top < area.bottom,
              );
              if (overlaps) return;
              drawn.push(area);
              ctx.textAlign = 'left';
              ctx.fillText(text, left, area.bottom);
            });
            ctx.restore();
            const css = (v) => Math.round(v / devicePixelRatio);
            box.dataset.labels = JSON.stringify(drawn.map((b) => [css(b.left), css(b.top), css(b.right), css(b.bottom)]));
            box.dataset.labelsSkipped = String(labels.length - drawn.length);
          },
        ],
      },
    };
    const plot = new uPlot(opts, [xs, ys], box);
    window.addEventListener('resize', () => plot.setSize({ width: width(), height: 260 }));
  }

  // ---------------------------------------------------------------- in-browser proofs

  function hexToBytes(hex) {
    if (!/^([0-9a-f]{2})*$/i.test(hex)) throw new Error(`“${hex.slice(0, 20)}” is not hex`);
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }

  function bytesToHex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  function b64ToBytes(s) {
    const bin = atob(s);
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  /**
   * The hash and signature functions of the checks: the browser's WebCrypto where the page
   * has it, else the audited @noble/hashes (SHA-256, SHA-512) and @noble/ed25519 that this
   * server embeds, unchanged, and the page loads on first use. Browsers give WebCrypto only
   * to a secure context (https:// or localhost), so a page over plain http:// from another
   * address checks with the embedded code: the same algorithms, the same verdicts.
   */
  const hasSubtle = () => Boolean(window.crypto && crypto.subtle);
  let nobleModules = null;
  function noble() {
    if (!nobleModules) {
      nobleModules = Promise.all([import(root.dataset.nobleHashes), import(root.dataset.nobleEd25519)]).then(([hashes, ed]) => {
        ed.hashes.sha512 = hashes.sha512;
        return { sha256: hashes.sha256, ed };
      });
    }
    return nobleModules;
  }

  /** Which code computed the SHA-256 hashes, for the steps shown. */
  function hashedBy() {
    return hasSubtle() ? 'WebCrypto' : 'the embedded @noble/hashes: this page is not a secure context, so the browser gives it no WebCrypto';
  }

  async function sha256(...parts) {
    const data = concat(...parts);
    if (hasSubtle()) return new Uint8Array(await crypto.subtle.digest('SHA-256', data));
    return (await noble()).sha256(data);
  }

  /**
   * Whether `signature` by the Ed25519 `publicKey` verifies over `message` (RFC 8032), and
   * by which code: WebCrypto where it has Ed25519, else @noble/ed25519 (strict RFC 8032
   * decoding, as WebCrypto).
   */
  async function ed25519Verify(publicKey, signature, message) {
    if (hasSubtle()) {
      let key = null;
      try {
        key = await crypto.subtle.importKey('raw', publicKey, { name: 'Ed25519' }, false, ['verify']);
      } catch {
        // A browser whose WebCrypto lacks Ed25519: the embedded code checks it instead.
      }
      if (key) return { good: await crypto.subtle.verify({ name: 'Ed25519' }, key, signature, message), by: 'WebCrypto' };
    }
    const { ed } = await noble();
    let good;
    try {
      good = ed.verify(signature, message, publicKey, { zip215: false });
    } catch {
      good = false;
    }
    return { good, by: 'the embedded @noble/ed25519' };
  }

  /**
   * The log entry of an event, computed here from its canonical bytes: from record format 2
   * on, the statement "tradeledger/event/v1", the revision and the event's SHA-256 in hex,
   * one per line; in format 1, the canonical bytes themselves.
   */
  async function leafEntry(canonical, revision) {
    const bytes = new TextEncoder().encode(canonical);
    if (canonical.startsWith('{"format":1,')) return { bytes, what: 'the entry is the event (format 1)' };
    const hash = bytesToHex(await sha256(bytes));
    const statement = `tradeledger/event/v1\n${revision}\n${hash}\n`;
    return { bytes: new TextEncoder().encode(statement), what: `event hash ${hash.slice(0, 16)}…, the entry states it` };
  }

  const LEAF = Uint8Array.of(0x00);
  const NODE = Uint8Array.of(0x01);

  /** RFC 9162 section 2.1.3.2: the root the audit path leads to, or null if it cannot. */
  async function rootFromInclusion(index, size, leaf, path) {
    if (index >= size) return null;
    let fn = index;
    let sn = size - 1;
    let r = leaf;
    for (const p of path) {
      if (sn === 0) return null;
      if (fn % 2 === 1 || fn === sn) {
        r = await sha256(NODE, p, r);
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      } else {
        r = await sha256(NODE, r, p);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    return sn === 0 ? r : null;
  }

  /** Checks a signed note (C2SP signed-note) with a verifier key `name+hash+base64(0x01||key)`. */
  async function verifyNote(note, vkey) {
    const steps = [];
    const split = note.indexOf('\n\n');
    if (split < 0) return { ok: false, why: 'the checkpoint is not a signed note', steps };
    const body = note.slice(0, split + 1);
    // `name+hash+base64`: the base64 may itself contain `+`.
    const [name, keyHash] = vkey.split('+', 2);
    const keyB64 = vkey.slice(name.length + keyHash.length + 2);
    const keyBytes = b64ToBytes(keyB64 || '');
    if (keyBytes.length !== 33 || keyBytes[0] !== 0x01) return { ok: false, why: 'the verifier key is not an Ed25519 key', steps };
    const publicKey = keyBytes.slice(1);
    const computed = bytesToHex((await sha256(new TextEncoder().encode(name + '\n'), Uint8Array.of(1), publicKey)).slice(0, 4));
    if (computed !== keyHash) return { ok: false, why: 'the verifier key hash does not match its name and key', steps };
    steps.push([true, `the verifier key ${name}+${keyHash} is well formed`]);
    const sigLine = note
      .slice(split + 2)
      .split('\n')
      .find((l) => l.startsWith('\u2014 ' + name + ' '));
    if (!sigLine) return { ok: false, why: `the checkpoint has no signature by ${name}`, steps };
    const sig = b64ToBytes(sigLine.split(' ')[2] || '');
    if (sig.length !== 68 || bytesToHex(sig.slice(0, 4)) !== keyHash) {
      return { ok: false, why: 'the signature line does not carry this key hash and a 64-byte signature', steps };
    }
    const { good, by } = await ed25519Verify(publicKey, sig.slice(4), new TextEncoder().encode(body));
    if (!good) return { ok: false, why: 'the Ed25519 signature of the checkpoint does not verify', steps };
    steps.push([true, `the checkpoint’s Ed25519 signature verifies (${by})`]);
    const lines = body.split('\n');
    return { ok: true, steps, origin: lines[0], size: Number(lines[1]), rootHex: bytesToHex(b64ToBytes(lines[2] || '')) };
  }

  /** Whether the event's canonical JSON publishes `figure` (key, period, value). */
  function canonicalHasFigure(canonical, figure) {
    let event;
    try {
      event = JSON.parse(canonical);
    } catch {
      return false;
    }
    const seen = [];
    (function walk(v) {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') {
        if (v.key === figure.key && typeof v.period === 'string') seen.push(v);
        Object.values(v).forEach(walk);
      }
    })(event);
    return seen.some((o) => o.period === figure.period && String(o.value) === String(figure.value));
  }

  async function verifyInclusion(proof, checkpoint, vkey, figure) {
    const steps = [];
    const fail = (why) => ({ ok: false, why, steps });
    try {
      const entry = await leafEntry(proof.canonical, proof.leafIndex + 1);
      const leaf = await sha256(LEAF, entry.bytes);
      steps.push([true, `${entry.what}; leaf hash SHA-256(0x00 ‖ entry) = ${bytesToHex(leaf).slice(0, 16)}… (hashed with ${hashedBy()})`]);
      if (!canonicalHasFigure(proof.canonical, figure)) return fail(`the proven event does not publish ${figure.key} ${figure.period} = ${figure.value}`);
      steps.push([true, `the event publishes ${figure.key} ${figure.period} = ${figure.value}`]);
      const root = await rootFromInclusion(proof.leafIndex, proof.treeSize, leaf, proof.hashes.map(hexToBytes));
      if (!root) return fail('the audit path does not fit the leaf index and tree size');
      const rootHex = bytesToHex(root);
      steps.push([true, `the audit path (${proof.hashes.length} hashes) leads to root ${rootHex.slice(0, 16)}…`]);
      const note = await verifyNote(checkpoint.note, vkey);
      steps.push(...note.steps);
      if (!note.ok) return fail(note.why);
      if (note.size !== proof.treeSize) return fail(`the checkpoint covers ${note.size} events, the proof ${proof.treeSize}`);
      if (note.rootHex !== rootHex) return fail('the root the audit path leads to is not the signed checkpoint’s root');
      steps.push([true, `the signed checkpoint of ${note.size} events has that root`]);
      return { ok: true, steps };
    } catch (e) {
      return fail(e.message || String(e));
    }
  }

  /** A tile's path (C2SP tlog-tiles): the index in 3-digit elements, all but the last after an `x`. */
  function tilePath(level, index, width) {
    let n = index;
    let path = String(n % 1000).padStart(3, '0');
    n = Math.floor(n / 1000);
    while (n > 0) {
      path = 'x' + String(n % 1000).padStart(3, '0') + '/' + path;
      n = Math.floor(n / 1000);
    }
    return `/tlog/tile/${level}/${path}` + (width < 256 ? `.p/${width}` : '');
  }

  /** A reader of the log's hash tiles that fetches each one once (with the read token, if any). */
  function tileReader() {
    const fetched = new Map();
    async function load(level, index, width) {
      const headers = {};
      const token = sessionStorage.getItem(TOKEN_KEY);
      if (token) headers.authorization = 'Bearer ' + token;
      let response = await fetch(tilePath(level, index, width), { headers });
      // tlog-tiles: a partial tile may be gone once the full one exists, with the same prefix.
      if (response.status === 404 && width < 256) response = await fetch(tilePath(level, index, 256), { headers });
      if (!response.ok) throw new Error(`the tile ${tilePath(level, index, width)} answered HTTP ${response.status}`);
      const bytes = new Uint8Array(await response.arrayBuffer());
      if (bytes.length < width * 32) throw new Error(`the tile ${tilePath(level, index, width)} has ${bytes.length} bytes, not ${width * 32}`);
      return bytes;
    }
    return (level, index, width) => {
      const key = `${level}/${index}/${width}`;
      if (!fetched.has(key)) fetched.set(key, load(level, index, width));
      return fetched.get(key);
    };
  }

  /**
   * The root of the tree of `size` leaves (RFC 9162 section 2.1.1) in which the leaves of
   * `known` (leaf index to hash, computed in this page) stand at their indices: every
   * subtree that holds one of them is hashed here, every other one is read from the log's
   * hash tiles. The result is the signed root only if each known leaf is in the signed tree
   * at its index, whatever the tiles say.
   */
  async function rootWithLeaves(size, known, tile) {
    const indices = [...known.keys()];
    const holdsKnown = (lo, n) => indices.some((i) => i >= lo && i < lo + n);
    // The complete subtree of 2^height leaves numbered `index` at its height.
    async function stored(height, index) {
      const level = Math.floor(height / 8);
      const below = 2 ** (height % 8);
      const first = index * below;
      const t = Math.floor(first / 256);
      const width = Math.min(256, Math.floor(size / 2 ** (8 * level)) - t * 256);
      const bytes = await tile(level, t, width);
      let hashes = [];
      for (let k = 0; k < below; k++) {
        const at = (first - t * 256 + k) * 32;
        hashes.push(bytes.slice(at, at + 32));
      }
      while (hashes.length > 1) {
        const next = [];
        for (let k = 0; k < hashes.length; k += 2) next.push(await sha256(NODE, hashes[k], hashes[k + 1]));
        hashes = next;
      }
      return hashes[0];
    }
    async function mth(lo, n) {
      if (n === 1 && known.has(lo)) return known.get(lo);
      let k = 1;
      while (k * 2 < n) k *= 2;
      if (k * 2 === n || n === 1) {
        if (!holdsKnown(lo, n)) return stored(Math.log2(n), lo / n);
      }
      return sha256(NODE, await mth(lo, k), await mth(lo + k, n - k));
    }
    return size === 0 ? sha256() : mth(0, size);
  }

  /**
   * The audit page's own reading of its events, from their canonical bytes alone: each
   * event's hash (SHA-256 of the canonical text), the revision and previous hash the text
   * states, and the leaf hash of its log entry; `problems` says where the server's answer
   * differs.
   */
  async function recomputeEvents(events) {
    const out = new Map();
    for (const e of events) {
      const hashHex = bytesToHex(await sha256(new TextEncoder().encode(e.canonical)));
      let stated = null;
      try {
        stated = JSON.parse(e.canonical);
      } catch {
        // Reported below: a canonical text that is not JSON states nothing.
      }
      const problems = [];
      if (hashHex !== e.hash) problems.push(`its canonical bytes hash to ${hashHex.slice(0, 12)}…, not to the hash shown`);
      if (!stated || stated.revision !== e.revision) problems.push('its canonical text does not state this revision');
      else if (stated.prev_hash !== e.prevHash) problems.push('its canonical text states another previous hash');
      const entry = await leafEntry(e.canonical, e.revision);
      const leaf = await sha256(LEAF, entry.bytes);
      out.set(e.revision, { hash: hashHex, prevHash: stated ? stated.prev_hash : null, leaf, problems });
    }
    return out;
  }

  /**
   * Whether the recomputed events are leaves of the signed tree `note` (size, root) verified:
   * their leaf hashes, with the log's tiles for the rest of the tree, lead to its root.
   */
  async function eventsInTree(recomputed, note) {
    const bad = [...recomputed].find(([, r]) => r.problems.length);
    if (bad) return { ok: false, why: `event ${bad[0]}: ${bad[1].problems.join('; ')}` };
    const known = new Map();
    for (const [revision, r] of recomputed) if (revision <= note.size) known.set(revision - 1, r.leaf);
    if (!known.size) return { ok: true, text: 'the events shown came after the signed checkpoint; nothing to prove yet' };
    const root = bytesToHex(await rootWithLeaves(note.size, known, tileReader()));
    if (root !== note.rootHex) return { ok: false, why: 'the leaves of the events shown, with the log’s tiles, do not lead to the signed root' };
    const later = recomputed.size - known.size;
    return {
      ok: true,
      text:
        `verified here (${hashedBy()}): each event shown hashes to its canonical bytes, links to the one before it, and ${known.size === 1 ? 'is a leaf' : `all ${known.size} are leaves`} of the signed tree of ${note.size} events` +
        (later ? `; ${later} came after it` : ''),
    };
  }

  // ---------------------------------------------------------------- page: vintage triangle

  const MAX_ROWS = 60;

  async function revisionsPage() {
    const id = segments()[1];
    const first = await gql(`query($id: ID!) { dataset(id: $id) { ${DATASET_FIELDS} } }`, { id });
    const ds = first.dataset;
    if (!ds) return notFound(`There is no dataset “${id}”.`);
    const key = param('key') || totalKey(ds);
    const from = param('from') || null;
    const to = param('to') || null;
    // `columns=all`: a column for every release of the dataset, not only those that
    // published a figure of the rows.
    const allColumns = param('columns') === 'all';
    document.title = `Vintages of ${keyLabel(ds, key)} · tradeledger`;

    async function load(update) {
      const t0 = performance.now();
      const filter = { key, periodFrom: from, periodTo: to };
      let rows = [];
      let after = null;
      let summary = null;
      for (let page = 0; page < 50; page++) {
        const d = await gql(
          `query($id: ID!, $filter: ObservationFilter, $after: String, $first: Int!, $stats: Boolean!) {
            observations(dataset: $id, filter: $filter, first: $first, after: $after) {
              nodes { period value preliminaryValue revisionFromPreliminary revisionCount
                versions { revision value delta version status publishedAt release { id title source } } }
              pageInfo { hasNextPage endCursor } }
            revisionSummary(dataset: $id, filter: $filter) @include(if: $stats) {
              observationCount revisedCount revisionCount meanRevision meanAbsoluteRevision } }`,
          { id, filter, after, first: 200, stats: page === 0 },
        );
        if (page === 0) summary = d.revisionSummary;
        rows.push(...d.observations.nodes);
        if (!d.observations.pageInfo.hasNextPage) break;
        after = d.observations.pageInfo.endCursor;
      }
      let cut = 0;
      if (!from && rows.length > MAX_ROWS) {
        cut = rows.length - MAX_ROWS;
        rows = rows.slice(cut);
        // The statistics follow the rows shown.
        summary = (
          await gql(
            `query($id: ID!, $filter: ObservationFilter) { revisionSummary(dataset: $id, filter: $filter) {
              observationCount revisedCount revisionCount meanRevision meanAbsoluteRevision } }`,
            { id, filter: { key, periodFrom: rows[0].period, periodTo: to } },
          )
        ).revisionSummary;
      }
      const columns = new Map();
      if (allColumns) {
        // Every release of the dataset, whether or not it touched these periods.
        let cursor = null;
        for (let page = 0; page < 100; page++) {
          const d = await gql(
            `query($id: ID!, $after: String) { releases(dataset: $id, first: 1000, after: $after) {
              nodes { id title source publishedAt revision } pageInfo { hasNextPage endCursor } } }`,
            { id, after: cursor },
          );
          for (const r of d.releases.nodes) columns.set(r.revision, { revision: r.revision, publishedAt: r.publishedAt, release: r });
          if (!d.releases.pageInfo.hasNextPage) break;
          cursor = d.releases.pageInfo.endCursor;
        }
      }
      for (const r of rows) for (const v of r.versions) if (!columns.has(v.revision)) columns.set(v.revision, v);
      const cols = [...columns.values()].sort((a, b) => a.revision - b.revision);
      const tRender = performance.now();
      const triangle = triangleTable(ds, key, rows, cols);
      const form = h(
        'form',
        { class: 'pickers', method: 'get', action: location.pathname },
        h('label', { for: 'key' }, 'Series key'),
        h('input', { id: 'key', name: 'key', value: key, size: 16, spellcheck: 'false' }),
        h('label', { for: 'from' }, 'From'),
        h('input', { id: 'from', name: 'from', value: from || '', placeholder: 'first period', size: 9 }),
        h('label', { for: 'to' }, 'To'),
        h('input', { id: 'to', name: 'to', value: to || '', placeholder: 'last period', size: 9 }),
        h('label', { for: 'columns' }, 'Columns'),
        h(
          'select',
          { id: 'columns', name: 'columns' },
          h('option', { value: '' }, 'releases of these periods'),
          h('option', { value: 'all', selected: allColumns }, 'every release'),
        ),
        h('button', { type: 'submit' }, 'Show'),
      );
      const csv = triangleCsv(rows, cols);
      const download = h(
        'a',
        {
          id: 'csv-download',
          class: 'button',
          href: URL.createObjectURL(new Blob([csv], { type: 'text/csv' })),
          download: `${ds.id}_${key}_vintages.csv`,
        },
        'Download the triangle as CSV',
      );
      render(
        h('p', { class: 'crumbs' }, h('a', { href: datasetUrl(id) }, ds.name), ' › vintages'),
        h('h1', null, `Vintages of ${keyLabel(ds, key)}`),
        h(
          'p',
          { class: 'meta' },
          'Series ',
          h('code', null, key),
          ` · ${unitLabel(ds)}. Rows are periods, columns the releases that published a figure of them (oldest first); each cell is the value as of that release. A cell the release revised is marked ▲ (up) or ▼ (down), a first publication ●.`,
        ),
        form,
        liveBadge,
        cut ? h('p', { class: 'note' }, `Showing the last ${MAX_ROWS} periods of ${rows.length + cut}; choose “From” to see earlier ones.`) : null,
        rows.length ? [tableWrap('Vintage triangle', triangle), h('p', null, download)] : h('p', null, 'No figures match.'),
        h('h2', null, 'Revisions from preliminary to latest'),
        statsTable(ds, rows, summary),
      );
      performance.measure('tradeledger:triangle', { start: t0, end: performance.now() });
      root.dataset.triangleMs = String(Math.round(performance.now() - t0));
      root.dataset.renderMs = String(Math.round(performance.now() - tRender));
      if (update) notice(...update);
    }

    await load(null);
    setLive('connecting');
    const head = (await gql('{ ledger { revision } }')).ledger.revision;
    subscribe(
      `subscription($id: ID!, $after: Int) { releasePublished(dataset: $id, afterRevision: $after) { revision release { id title status } } }`,
      { id, after: head },
      (d) => {
        const ev = d.releasePublished;
        load(['release ', releaseLink(ev.release), ` (revision ${ev.revision}) was published; the triangle includes it.`]).catch((e) =>
          notice('could not reload: ' + e.message),
        );
      },
    );
  }

  function triangleTable(ds, key, rows, cols) {
    const colIndex = new Map(cols.map((c, i) => [c.revision, i]));
    const thead = h(
      'thead',
      null,
      h(
        'tr',
        null,
        h('th', { scope: 'col' }, 'Period'),
        cols.map((c) =>
          h(
            'th',
            { scope: 'col', title: `${c.release.title}, published ${c.publishedAt}` },
            h('a', { href: '/releases/' + enc(c.release.id) }, `r${c.revision}`),
            h('br'),
            h('span', { class: 'small' }, c.publishedAt.slice(0, 10)),
            isSynthetic(c.release) ? [h('br'), syntheticTag(c.release)] : null,
          ),
        ),
      ),
    );
    // Built as one string: thousands of cells render much faster through one parse than
    // element by element. Every interpolated value is a number or escaped.
    const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
    // With thousands of columns, a run of cells a release did not touch is one cell spanning
    // them (empty before the first publication, the value carried after): the table then has
    // a few cells per row to lay out instead of thousands.
    const wide = cols.length > 200;
    const body = [];
    for (const r of rows) {
      const cells = [];
      const run = (n, html) => {
        if (n <= 0) return;
        if (wide) cells.push(html.replace('<td', `<td colspan="${n}"`));
        else for (let k = 0; k < n; k++) cells.push(html);
      };
      const versions = r.versions.slice().sort((a, b) => a.revision - b.revision);
      run(versions.length ? colIndex.get(versions[0].revision) : cols.length, '<td class="empty"></td>');
      for (let i = 0; i < versions.length; i++) {
        const v = versions[i];
        const start = colIndex.get(v.revision);
        const end = i + 1 < versions.length ? colIndex.get(versions[i + 1].revision) : cols.length;
        const neg = isNegative(v.value);
        const text = esc(fmt(v.value)) + (neg ? ' <span class="deficit" title="deficit">deficit</span>' : '');
        if (v.version === 1) {
          cells.push(`<td class="n first" title="first published (${esc(v.status)})"><span aria-hidden="true">● </span>${text}</td>`);
        } else if (v.delta != null && !/^-?0*(\.0*)?$/.test(v.delta)) {
          const down = isNegative(v.delta);
          cells.push(
            `<td class="n revised ${down ? 'down' : 'up'}" title="revised ${down ? 'down' : 'up'} by ${esc(fmt(v.delta))} (${esc(v.status)})"><span aria-hidden="true">${down ? '▼' : '▲'} </span>${text}</td>`,
          );
        } else {
          cells.push(`<td class="n">${text}</td>`);
        }
        run(end - start - 1, `<td class="n carried">${text}</td>`);
      }
      body.push(
        `<tr data-period="${esc(r.period)}"><th scope="row"><a href="${esc(figureUrl(ds.id, key, r.period))}">${esc(r.period)}</a></th>${cells.join('')}</tr>`,
      );
    }
    const tbody = document.createElement('tbody');
    tbody.innerHTML = body.join('');
    const table = h(
      'table',
      { id: 'triangle', class: wide ? 'triangle wide' : 'triangle' },
      h('caption', null, `Vintage triangle of ${key} (${unitLabel(ds)}): value of each period as of each release`),
      thead,
      tbody,
    );
    return table;
  }

  function csvCell(s) {
    const t = String(s);
    return /[",\n]/.test(t) ? '"' + t.replace(/"/g, '""') + '"' : t;
  }

  function triangleCsv(rows, cols) {
    const lines = [['period', ...cols.map((c) => `revision ${c.revision} (${c.publishedAt.slice(0, 10)})`)].map(csvCell).join(',')];
    for (const r of rows) {
      const versions = r.versions.slice().sort((a, b) => a.revision - b.revision);
      const cells = cols.map((c) => {
        let cur = '';
        for (const v of versions) if (v.revision <= c.revision) cur = v.value;
        return cur;
      });
      lines.push([r.period, ...cells].map(csvCell).join(','));
    }
    return lines.join('\r\n') + '\r\n';
  }

  function abs(v) {
    return v.replace(/^-/, '');
  }

  function statsTable(ds, rows, summary) {
    return tableWrap(
      'Revision statistics',
      h(
        'table',
        { id: 'revision-stats' },
        h('caption', null, `Revision = latest − preliminary, per period and overall (${unitLabel(ds)})`),
        h(
          'thead',
          null,
          h('tr', null, ['Period', 'Preliminary', 'Latest', 'Mean revision', 'Mean absolute revision', 'Changes'].map((t) => h('th', { scope: 'col' }, t))),
        ),
        h(
          'tbody',
          null,
          rows.map((r) =>
            h(
              'tr',
              null,
              h('th', { scope: 'row' }, r.period),
              h('td', { class: 'n' }, value(r.preliminaryValue)),
              h('td', { class: 'n' }, value(r.value)),
              h('td', { class: 'n' }, delta(r.revisionFromPreliminary)),
              h('td', { class: 'n' }, fmt(abs(r.revisionFromPreliminary))),
              h('td', { class: 'n' }, r.revisionCount),
            ),
          ),
        ),
        summary
          ? h(
              'tfoot',
              null,
              h(
                'tr',
                { id: 'overall' },
                h('th', { scope: 'row' }, `Overall (${summary.observationCount} periods, ${summary.revisedCount} revised)`),
                h('td'),
                h('td'),
                h('td', { class: 'n' }, delta(summary.meanRevision)),
                h('td', { class: 'n' }, summary.meanAbsoluteRevision == null ? '—' : fmt(summary.meanAbsoluteRevision)),
                h('td', { class: 'n' }, summary.revisionCount),
              ),
            )
          : null,
      ),
    );
  }

  // ---------------------------------------------------------------- page: a release

  async function releasePage() {
    const id = segments()[1];
    if (!UUID_RE.test(id)) return notFound(`“${id}” is not a release id (a UUID such as 6b1f0c2e-4d3a-4e51-9a57-2025a0000001).`);
    const data = await gql(
      `query($id: UUID!) { release(id: $id) { id status title publishedAt backfilled revisionReason { kind note } source revision recordedAt actor
        observationCount revisedCount hash dataset { ${DATASET_FIELDS} }
        observations { key period measure value previousValue delta } } }`,
      { id },
    );
    const r = data.release;
    if (!r) return notFound(`There is no release ${id}.`);
    const ds = r.dataset;
    document.title = `${r.title} · tradeledger`;
    const kind = (o) => (o.previousValue == null ? 'new' : /^-?0*(\.0*)?$/.test(o.delta) ? 'unchanged' : 'revised');
    const counts = { new: 0, revised: 0, unchanged: 0 };
    r.observations.forEach((o) => counts[kind(o)]++);
    render(
      h('p', { class: 'crumbs' }, h('a', { href: datasetUrl(ds.id) }, ds.name), ' › release'),
      h('h1', null, r.title, ' ', syntheticTag(r)),
      isSynthetic(r)
        ? h('p', { class: 'synthetic-note', role: 'note' }, h('strong', null, 'SYNTHETIC: '), 'this release is invented test data, not one the publisher made.')
        : null,
      h(
        'dl',
        { class: 'facts' },
        h('dt', null, 'Status'),
        h('dd', null, badge(r.status)),
        h('dt', null, 'Published'),
        h('dd', null, time(r.publishedAt), ' ', backfillTag(r)),
        h('dt', null, 'Source'),
        h('dd', null, r.source || '—'),
        r.revisionReason ? h('dt', null, 'Revisions') : null,
        r.revisionReason ? h('dd', null, reasonNote(r.revisionReason)) : null,
        h('dt', null, 'Recorded'),
        h('dd', null, 'revision ', h('a', { href: `/audit?after=${r.revision - 1}` }, r.revision), ' at ', time(r.recordedAt), ' by ', r.actor),
        h('dt', null, 'Event hash'),
        h('dd', null, h('code', { class: 'hash-full' }, r.hash)),
        h('dt', null, 'Figures'),
        h('dd', { id: 'release-counts' }, `${r.observationCount} published: ${counts.revised} revised, ${counts.new} new, ${counts.unchanged} republished unchanged`),
      ),
      h('p', null, h('a', { href: datasetUrl(ds.id, null, r.id) }, 'The dataset as of this release')),
      tableWrap(
        'Figures of the release',
        h(
          'table',
          { id: 'release-figures' },
          h('caption', null, `What the release published and changed (${unitLabel(ds)})`),
          h(
            'thead',
            null,
            h('tr', null, ['Figure', 'Series key', 'Period', 'Measure', 'Previous value', 'New value', 'Delta', 'Change'].map((t) => h('th', { scope: 'col' }, t))),
          ),
          h(
            'tbody',
            null,
            r.observations.map((o) =>
              h(
                'tr',
                { 'data-key': o.key, 'data-period': o.period, class: kind(o) },
                h('th', { scope: 'row' }, h('a', { href: figureUrl(ds.id, o.key, o.period, r.id) }, keyLabel(ds, o.key))),
                h('td', null, h('code', null, o.key)),
                h('td', null, o.period),
                h('td', null, o.measure),
                h('td', { class: 'n' }, value(o.previousValue)),
                h('td', { class: 'n value' }, value(o.value)),
                h('td', { class: 'n' }, delta(o.delta)),
                h('td', null, kind(o)),
              ),
            ),
          ),
        ),
      ),
    );
  }

  // ---------------------------------------------------------------- page: /audit

  const KINDS = ['DATASET_DEFINED', 'RELEASE_PUBLISHED', 'DATASET_AMENDED'];

  async function auditPage() {
    document.title = 'Audit log · tradeledger';
    const filters = {
      dataset: param('dataset') || null,
      kind: KINDS.includes(param('kind')) ? param('kind') : null,
      actor: param('actor') || null,
      recordedFrom: param('from') || null,
      recordedTo: param('to') || null,
    };
    const afterParam = param('after');
    if (afterParam != null && !/^\d+$/.test(afterParam)) throw new ApiError(`after “${afterParam}” is not a revision number`, []);

    async function load(update) {
      const meta = await gql(`{ ledger { revision hash } datasets { id name } verifierKey checkpoint { origin treeSize rootHash note } }`);
      const after = afterParam != null ? Number(afterParam) : Math.max(0, meta.ledger.revision - 50);
      const d = await gql(
        `query($after: Int, $dataset: ID, $kind: EventKind, $actor: String, $recordedFrom: DateTime, $recordedTo: DateTime) {
          events(after: $after, first: 50, dataset: $dataset, kind: $kind, actor: $actor, recordedFrom: $recordedFrom, recordedTo: $recordedTo) {
            totalCount examinedThrough pageInfo { hasNextPage endCursor }
            nodes { revision eventId kind recordedAt actor prevHash hash canonical dataset release { id title source } } } }`,
        { after, ...filters },
      );
      const events = d.events.nodes;
      const recomputed = await recomputeEvents(events);
      const q = (patch) => {
        const p = new URLSearchParams(location.search);
        for (const [k, v] of Object.entries(patch)) v == null ? p.delete(k) : p.set(k, v);
        return '/audit?' + p.toString();
      };
      const form = h(
        'form',
        { class: 'pickers', method: 'get', action: '/audit' },
        h('label', { for: 'f-dataset' }, 'Dataset'),
        h('select', { id: 'f-dataset', name: 'dataset' }, h('option', { value: '' }, 'any'), meta.datasets.map((x) => h('option', { value: x.id, selected: x.id === filters.dataset }, x.id))),
        h('label', { for: 'f-kind' }, 'Kind'),
        h('select', { id: 'f-kind', name: 'kind' }, h('option', { value: '' }, 'any'), KINDS.map((k) => h('option', { value: k, selected: k === filters.kind }, k))),
        h('label', { for: 'f-actor' }, 'Actor'),
        h('input', { id: 'f-actor', name: 'actor', value: filters.actor || '', size: 10 }),
        h('label', { for: 'f-from' }, 'Recorded from'),
        h('input', { id: 'f-from', name: 'from', value: filters.recordedFrom || '', placeholder: '2025-01-01T00:00:00Z', size: 20 }),
        h('label', { for: 'f-to' }, 'before'),
        h('input', { id: 'f-to', name: 'to', value: filters.recordedTo || '', placeholder: 'RFC 3339 time', size: 20 }),
        h('label', { for: 'f-after' }, 'After revision'),
        h('input', { id: 'f-after', name: 'after', value: afterParam || '', placeholder: 'latest 50', size: 8, inputmode: 'numeric' }),
        h('button', { type: 'submit' }, 'Filter'),
      );
      const table = h(
        'table',
        { id: 'events' },
        h('caption', null, `Events after revision ${after} (${d.events.totalCount} in the log)`),
        h(
          'thead',
          null,
          h('tr', null, ['Revision', 'Kind', 'Dataset', 'Recorded at', 'Actor', 'Release', 'Hash', 'Previous hash', 'Chain'].map((t) => h('th', { scope: 'col' }, t))),
        ),
        h(
          'tbody',
          null,
          events.map((e) => {
            const mine = recomputed.get(e.revision);
            const prev = recomputed.get(e.revision - 1);
            const link = mine.problems.length
              ? h('span', { class: 'bad' }, '✗ ' + mine.problems.join('; '))
              : e.revision === 1
                ? h('span', null, mine.prevHash === '0'.repeat(64) ? '✓ first event' : '✗ first event must follow 64 zeros')
                : prev
                  ? h('a', { href: '#ev-' + (e.revision - 1), class: prev.hash === mine.prevHash ? 'ok' : 'bad' }, prev.hash === mine.prevHash ? `✓ links to ${e.revision - 1}` : `✗ does not match ${e.revision - 1}`)
                  : h('a', { href: q({ after: String(e.revision - 2) }) }, `→ ${e.revision - 1}`);
            return h(
              'tr',
              { id: 'ev-' + e.revision },
              h('th', { scope: 'row' }, e.revision),
              h('td', null, e.kind),
              h('td', null, h('a', { href: datasetUrl(e.dataset) }, e.dataset)),
              h('td', null, time(e.recordedAt)),
              h('td', null, e.actor),
              h('td', null, e.release ? [releaseLink(e.release), ' ', syntheticTag(e.release)] : '—'),
              h('td', null, hash(e.hash)),
              h('td', null, hash(e.prevHash)),
              h('td', null, link),
            );
          }),
        ),
      );
      const verdict = h('p', { class: 'verdict pending', id: 'checkpoint-verdict', role: 'status' }, 'checking…');
      const eventsVerdict = h('p', { class: 'verdict pending', id: 'events-verdict', role: 'status' }, 'checking the events…');
      const witness = `tradeledger witness --url ${location.origin} \\\n  --vkey '${meta.verifierKey}' \\\n  --state witness-state.txt` + (sessionStorage.getItem(TOKEN_KEY) ? ' \\\n  --token "$READ_TOKEN"' : '');
      render(
        h('h1', null, 'Audit log'),
        h('p', null, 'Every change to the ledger is an event; each event’s hash covers the previous one’s, so the chain below cannot be edited without every later hash changing.'),
        form,
        afterParam == null && !Object.values(filters).some(Boolean) ? liveBadge : null,
        events.length ? [eventsVerdict, tableWrap('Events', table)] : h('p', null, 'No event on this page matches.'),
        h(
          'p',
          { class: 'pager' },
          after > 0 ? h('a', { href: q({ after: String(Math.max(0, after - 50)) }) }, '← Earlier events') : null,
          ' ',
          d.events.pageInfo.hasNextPage ? h('a', { href: q({ after: d.events.pageInfo.endCursor }) }, 'Later events →') : null,
        ),
        h('h2', null, 'Current checkpoint'),
        h('p', null, `The log’s signed tree head: ${meta.checkpoint.treeSize} events, root `, h('code', { class: 'hash-full', id: 'checkpoint-root' }, meta.checkpoint.rootHash), '.'),
        verdict,
        h('pre', { id: 'checkpoint-note' }, meta.checkpoint.note),
        h('p', null, 'Verifier key: ', h('code', { id: 'verifier-key' }, meta.verifierKey)),
        h('h2', null, 'Run the witness'),
        h(
          'p',
          null,
          'A witness checks from outside that this log only grows: it fetches the signed checkpoint, verifies the signature with the key you got from the operator (not from this page alone), and checks a consistency proof from the checkpoint it saved last time. Run it from cron:',
        ),
        h('pre', { id: 'witness-command' }, witness),
        h('p', null, 'It exits 0 when everything verifies and 1 with the reason otherwise.'),
      );
      const note = await verifyNote(meta.checkpoint.note, meta.verifierKey).catch((e) => ({ ok: false, why: e.message || String(e) }));
      const ok = note.ok && note.size === meta.checkpoint.treeSize && note.rootHex === meta.checkpoint.rootHash;
      verdict.className = 'verdict ' + (ok ? 'verified' : 'failed');
      verdict.textContent = ok ? 'verified: the signature is good and states this root' : 'FAILED: ' + (note.why || 'the signed note does not state this size and root');
      if (events.length) {
        const inTree = ok
          ? await eventsInTree(recomputed, note).catch((e) => ({ ok: false, why: e.message || String(e) }))
          : { ok: false, why: 'the checkpoint does not verify, so the events are not checked against it' };
        eventsVerdict.className = 'verdict ' + (inTree.ok ? 'verified' : 'failed');
        eventsVerdict.textContent = inTree.ok ? inTree.text : 'FAILED: ' + inTree.why;
      }
      if (update) notice(...update);
      return meta.ledger.revision;
    }

    const head = await load(null);
    if (afterParam == null && !Object.values(filters).some(Boolean)) {
      setLive('connecting');
      subscribe(
        `subscription($after: Int) { releasePublished(afterRevision: $after) { revision release { id title } } }`,
        { after: head },
        (d) => {
          const ev = d.releasePublished;
          load([`event ${ev.revision} recorded release `, releaseLink(ev.release), '.']).catch((e) => notice('could not reload: ' + e.message));
        },
      );
    }
  }

  // ---------------------------------------------------------------- start

  const PAGES = {
    home: homePage,
    dataset: datasetPage,
    figure: figurePage,
    revisions: revisionsPage,
    release: releasePage,
    audit: auditPage,
  };

  if (sessionStorage.getItem(TOKEN_KEY)) {
    const footer = document.querySelector('footer.site');
    if (footer) {
      footer.append(
        h(
          'p',
          null,
          h(
            'button',
            {
              type: 'button',
              class: 'link',
              onclick: () => {
                sessionStorage.removeItem(TOKEN_KEY);
                location.reload();
              },
            },
            'Forget the read token',
          ),
        ),
      );
    }
  }
  run(PAGES[PAGE] || (() => notFound('Unknown page.')));
})();

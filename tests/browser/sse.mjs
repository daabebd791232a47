// Subscribes over Server-Sent Events with the graphql-sse client ("distinct connections"
// mode) and prints each result as one JSON line, then `done` when the server completes the
// subscription or `error: ...` when it fails.
//
//   node tests/browser/sse.mjs <stream-url> <token> <query> <results>
//
// Exits after <results> results (0), when the subscription completes (0) or fails (1).
import { createClient } from 'graphql-sse';

const [url, token, query, wanted] = process.argv.slice(2);
const client = createClient({
  url,
  singleConnection: false,
  headers: token ? { authorization: `Bearer ${token}` } : {},
  retryAttempts: 0,
});
let seen = 0;
const stop = client.subscribe(
  { query },
  {
    next: (result) => {
      console.log(JSON.stringify(result));
      seen += 1;
      if (seen >= Number(wanted)) {
        stop();
        client.dispose();
        process.exit(0);
      }
    },
    error: (e) => {
      console.log(`error: ${e instanceof Error ? e.message : JSON.stringify(e)}`);
      process.exit(1);
    },
    complete: () => {
      console.log('done');
      process.exit(0);
    },
  },
);

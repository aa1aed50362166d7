// The graphql-http audit of favgate's /graphql: every server audit of the GraphQL over HTTP
// spec against the URL given, each request carrying the token (favgate answers nothing
// without one). Prints the results as a JSON array on stdout; tests/test_graphql_over_http.py
// judges them.
//
// Usage: FAVGATE_TOKEN=<token> node audit.mjs <url>
import { serverAudits } from "graphql-http";

const [url] = process.argv.slice(2);
const token = process.env.FAVGATE_TOKEN;
if (!url || !token) {
  console.error("usage: FAVGATE_TOKEN=<token> node audit.mjs <url>");
  process.exit(2);
}

// The audits build their own requests: the token is added to each one here.
function fetchWithToken(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set("token", token);
  return fetch(input, { ...init, headers });
}

const results = [];
for (const audit of serverAudits({ url, fetchFn: fetchWithToken })) {
  const result = await audit.fn();
  results.push({
    id: result.id,
    name: result.name,
    status: result.status,
    reason: result.status === "ok" ? null : result.reason,
  });
}
console.log(JSON.stringify(results));

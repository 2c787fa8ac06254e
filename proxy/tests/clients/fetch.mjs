// How to try this: HTTPS_PROXY=http://127.0.0.1:7401 NODE_EXTRA_CA_CERTS=<authtap ca path> \
//   node fetch.mjs URL [HEADER:VALUE ...]
// A Node.js client the way gateways are built: undici's EnvHttpProxyAgent honours HTTPS_PROXY and
// NO_PROXY on every Node version (plain fetch needs NODE_USE_ENV_PROXY=1 on Node 24). Prints the
// status line and body; exits 3 on a network error, printing its cause.
import { EnvHttpProxyAgent, fetch } from "undici";

const [url, ...headerArgs] = process.argv.slice(2);
const headers = Object.fromEntries(
  headerArgs.map((h) => [h.slice(0, h.indexOf(":")), h.slice(h.indexOf(":") + 1)]),
);
try {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ model: "kimi-k2.5", messages: [{ role: "user", content: "hi" }] }),
    dispatcher: new EnvHttpProxyAgent(),
  });
  console.log(response.status);
  console.log(await response.text());
} catch (error) {
  console.log(`network error: ${error.cause?.code ?? error.cause ?? error}`);
  process.exit(3);
}

// The stock AG-UI client (`HttpAgent` from @ag-ui/client, pinned in package.json) against a
// served runner, for the end-to-end tests: its event verifier is always on, so a stream it
// rejects fails the run. Prints one JSON line with what it saw.
//
//   node client.mjs <url> <token> run <threadId> <runId> <text> [lastEventId]
//   node client.mjs <url> <token> abort <threadId> <runId> <text> [eventType]
//   node client.mjs <url> <token> preflight <origin>
import { HttpAgent } from "@ag-ui/client";

const [url, token, mode, ...rest] = process.argv.slice(2);

function agent(threadId, extraHeaders = {}) {
  return new HttpAgent({
    url: `${url}/`,
    threadId,
    headers: { Authorization: `Bearer ${token}`, ...extraHeaders },
  });
}

async function run(threadId, runId, text, lastEventId) {
  const headers = lastEventId === undefined ? {} : { "Last-Event-ID": lastEventId };
  const client = agent(threadId, headers);
  client.addMessage({ id: `${runId}-user`, role: "user", content: text });
  const events = [];
  const result = await client.runAgent(
    { runId },
    { onEvent: ({ event }) => { events.push(event.type); } },
  );
  return {
    events,
    texts: client.messages
      .filter((m) => m.role === "assistant" && typeof m.content === "string")
      .map((m) => m.content),
    newMessages: result.newMessages.length,
  };
}

// abortRun() on the first event of `abortOn`: an agent that does not answer in text
// (a LangGraph graph that only reports progress, say) is aborted on its first CUSTOM.
async function abort(threadId, runId, text, abortOn = "TEXT_MESSAGE_CONTENT") {
  const client = agent(threadId);
  client.addMessage({ id: `${runId}-user`, role: "user", content: text });
  const events = [];
  let error = null;
  try {
    await client.runAgent(
      { runId },
      {
        onEvent: ({ event }) => {
          events.push(event.type);
          // The user stops the run as soon as the agent answers.
          if (event.type === abortOn) client.abortRun();
        },
      },
    );
  } catch (e) {
    error = String(e && e.name ? e.name : e);
  }
  return { events, error };
}

async function preflight(origin) {
  const response = await fetch(`${url}/`, {
    method: "OPTIONS",
    headers: {
      Origin: origin,
      "Access-Control-Request-Method": "POST",
      "Access-Control-Request-Headers": "authorization,content-type",
    },
  });
  return {
    status: response.status,
    allowOrigin: response.headers.get("access-control-allow-origin"),
    allowHeaders: response.headers.get("access-control-allow-headers"),
  };
}

const modes = { run, abort, preflight };
if (!modes[mode]) {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
try {
  const out = await modes[mode](...rest);
  console.log(JSON.stringify(out));
} catch (e) {
  console.error(`the client failed: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
}

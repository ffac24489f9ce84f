// The official OpenAI Node SDK, unmodified, against a running edge (run by tests/e2e/test_node.py).
//
//   LLMTUNNEL_BASE_URL   the tenant URL plus /v1, e.g. https://acme.example.com/v1
//   LLMTUNNEL_API_KEY    an sk-lt-… key of that tenant
//   NODE_EXTRA_CA_CERTS  the edge's CA when it is private (read by Node itself at start-up)
//
// Prints one JSON object with what it observed and exits 0; any unexpected failure exits 1.
// The requests below are repeated with the Python SDK by tests/e2e/test_node.py: keep them in step.

import fs from "node:fs";
import OpenAI, { NotFoundError } from "openai";
import { VERSION } from "openai/version";

const CHAT_MODEL = "llama3.2:3b";
const TOOL_MODEL = "qwen3:8b";
const PROMPT = "Tell me about tunnels tokens=12";
const TOOL_PROMPT = "call get_weather for Paris";
const UNKNOWN_MODEL = "nope:1b";
const WEATHER_TOOL = {
  type: "function",
  function: {
    name: "get_weather",
    description: "look up get_weather",
    parameters: {
      type: "object",
      properties: { city: { type: "string" } },
      required: ["city"],
    },
  },
};

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function check(condition, message) {
  if (!condition) throw new Error(`unexpected: ${message}`);
}

function usageOf(usage) {
  check(usage, "no usage");
  const { prompt_tokens, completion_tokens, total_tokens } = usage;
  return { prompt_tokens, completion_tokens, total_tokens };
}

async function main() {
  const ca = process.env.NODE_EXTRA_CA_CERTS;
  if (ca) check(fs.existsSync(ca), `NODE_EXTRA_CA_CERTS names no file: ${ca}`);
  const client = new OpenAI({
    baseURL: env("LLMTUNNEL_BASE_URL"),
    apiKey: env("LLMTUNNEL_API_KEY"),
    maxRetries: 0, // a failure must show, not be retried away
    timeout: 30_000,
  });
  const messages = [{ role: "user", content: PROMPT }];
  const observed = { sdk_version: VERSION, node_version: process.version };

  const models = [];
  for await (const model of client.models.list()) models.push(model.id);
  observed.models = models.sort();

  const chat = await client.chat.completions.create({ model: CHAT_MODEL, messages });
  check(chat.object === "chat.completion", `chat object ${chat.object}`);
  observed.chat = {
    text: chat.choices[0].message.content,
    finish_reason: chat.choices[0].finish_reason,
    model: chat.model,
    usage: usageOf(chat.usage),
  };

  const stream = await client.chat.completions.create({
    model: CHAT_MODEL,
    messages,
    stream: true,
    stream_options: { include_usage: true },
  });
  const parts = [];
  let role = null;
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks += 1;
    const choice = chunk.choices[0];
    if (choice) {
      role = role ?? choice.delta.role ?? null;
      parts.push(choice.delta.content ?? "");
      finish = choice.finish_reason ?? finish;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  observed.stream = {
    text: parts.join(""),
    role,
    finish_reason: finish,
    chunks,
    usage: usageOf(usage),
  };

  const tooled = await client.chat.completions.create({
    model: TOOL_MODEL,
    messages: [{ role: "user", content: TOOL_PROMPT }],
    tools: [WEATHER_TOOL],
  });
  const toolChoice = tooled.choices[0];
  check(toolChoice.finish_reason === "tool_calls", `finish_reason ${toolChoice.finish_reason}`);
  const calls = toolChoice.message.tool_calls ?? [];
  check(calls.length > 0, "no tool calls");
  observed.tools = {
    finish_reason: toolChoice.finish_reason,
    calls: calls.map((call) => ({
      id: call.id,
      type: call.type,
      name: call.function.name,
      arguments: call.function.arguments,
      parsed: JSON.parse(call.function.arguments), // throws, and so fails, on a non-JSON string
    })),
  };

  const completion = await client.completions.create({ model: CHAT_MODEL, prompt: PROMPT });
  check(completion.object === "text_completion", `completion object ${completion.object}`);
  observed.completion = {
    text: completion.choices[0].text,
    finish_reason: completion.choices[0].finish_reason,
    usage: usageOf(completion.usage),
  };

  try {
    await client.chat.completions.create({ model: UNKNOWN_MODEL, messages });
    throw new Error(`unexpected: ${UNKNOWN_MODEL} was served`);
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    check(err.status === 404, `status ${err.status}`);
    check(typeof err.code === "string" && err.code, "no error code");
    observed.error = {
      class: err.constructor.name,
      status: err.status,
      code: err.code,
      param: err.param ?? null,
      type: err.type ?? null,
    };
  }

  process.stdout.write(JSON.stringify(observed) + "\n");
}

main().catch((err) => {
  const cause = err?.cause ? `\ncaused by: ${err.cause?.stack ?? err.cause}` : "";
  process.stderr.write(`client.mjs failed: ${err?.stack ?? err}${cause}\n`);
  process.exit(1);
});

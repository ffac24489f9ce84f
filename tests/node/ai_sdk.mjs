// Vercel's AI SDK (`ai` with `@ai-sdk/openai`), unmodified and on its defaults (the Responses
// API), against a running edge (run by tests/e2e/test_node.py): a two-step tool call on a
// thinking model.
//
//   LLMTUNNEL_BASE_URL   the tenant URL plus /v1
//   LLMTUNNEL_API_KEY    an sk-lt-… key of that tenant
//   NODE_EXTRA_CA_CERTS  the edge's CA when it is private (read by Node itself at start-up)
//
// Prints one JSON object with what it observed and exits 0; any unexpected failure exits 1.

import { createOpenAI } from "@ai-sdk/openai";
import { generateText, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";

const MODEL = process.env.LLMTUNNEL_MODEL ?? "qwen3:8b";
const PROMPT = "call get_weather for Paris";
const WEATHER = "sunny, 21 C";

function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function tools(calls) {
  return {
    get_weather: tool({
      description: "look up the weather in a city",
      inputSchema: z.object({ city: z.string() }),
      execute: async (input) => {
        calls.push(input);
        return WEATHER;
      },
    }),
  };
}

function observe(result, calls) {
  return {
    text: result.text,
    finish_reason: result.finishReason,
    steps: result.steps.map((step) => ({
      finish_reason: step.finishReason,
      text: step.text,
      reasoning: step.reasoningText ?? null,
      tool_calls: step.toolCalls.map((c) => ({ name: c.toolName, input: c.input })),
      tool_results: step.toolResults.map((r) => r.output),
      warnings: (step.warnings ?? []).map((w) => w.type),
    })),
    calls,
  };
}

async function main() {
  const provider = createOpenAI({ baseURL: env("LLMTUNNEL_BASE_URL"), apiKey: env("LLMTUNNEL_API_KEY") });
  const model = provider(MODEL); // the provider's default: the Responses API
  const observed = {};

  const calls = [];
  const result = await generateText({
    model,
    tools: tools(calls),
    stopWhen: stepCountIs(3),
    prompt: PROMPT,
    maxRetries: 0,
  });
  observed.generate = observe(result, calls);

  const streamedCalls = [];
  const errors = [];
  const stream = streamText({
    model,
    tools: tools(streamedCalls),
    stopWhen: stepCountIs(3),
    prompt: PROMPT,
    maxRetries: 0,
    onError: ({ error }) => errors.push(String(error?.message ?? error)),
  });
  const deltas = [];
  for await (const delta of stream.textStream) deltas.push(delta);
  observed.stream = {
    ...observe({ text: await stream.text, finishReason: await stream.finishReason, steps: await stream.steps }, streamedCalls),
    deltas: deltas.join(""),
    errors,
  };

  // A hosted tool next to a function tool, as AI SDK apps often add: the edge drops it and says so
  // in a header the SDK hands back.
  const hosted = await generateText({
    model,
    tools: { ...tools([]), web_search: provider.tools.webSearch({}) },
    prompt: "Tell me about tunnels tokens=5",
    maxRetries: 0,
  });
  observed.hosted = {
    text: hosted.text,
    dropped: hosted.response.headers?.["x-llmtunnel-dropped-tools"] ?? null,
    tools: (hosted.response.body?.tools ?? []).map((t) => t.name ?? t.type),
  };

  process.stdout.write(JSON.stringify(observed) + "\n");
}

main().catch((err) => {
  const cause = err?.cause ? `\ncaused by: ${err.cause?.stack ?? err.cause}` : "";
  const body = err?.responseBody ? `\nresponse body: ${err.responseBody}` : "";
  process.stderr.write(`ai_sdk.mjs failed: ${err?.stack ?? err}${cause}${body}\n`);
  process.exit(1);
});

// Anthropic's TypeScript SDK against a gateway's /v1/messages:
// node anthropic.mjs BASE_URL API_KEY MODEL. Prints one JSON line with what
// the SDK returned: a create, a stream's final message, a tool call
// (buffered and streamed), a token count and the typed auth error.
import Anthropic from "@anthropic-ai/sdk";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new Anthropic({ baseURL, apiKey, maxRetries: 0 });
const ask = { model, max_tokens: 50, messages: [{ role: "user", content: "hello there" }] };
const weather = {
  name: "get_weather",
  description: "The weather in a city.",
  input_schema: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
};

const created = await client.messages.create({ ...ask, system: [{ type: "text", text: "Be brief." }] });
const stream = client.messages.stream(ask);
let streamed = "";
stream.on("text", (t) => (streamed += t));
const final = await stream.finalMessage();
const tool = await client.messages.create({ ...ask, tools: [weather] });
const toolStream = await client.messages.stream({ ...ask, tools: [weather] }).finalMessage();
const count = await client.messages.countTokens({ model, messages: ask.messages });
let authError = null;
try {
  await new Anthropic({ baseURL, apiKey: "mg-wrong", maxRetries: 0 }).messages.create(ask);
} catch (e) {
  authError = { name: e.constructor.name, status: e.status, type: e.error?.error?.type };
}
console.log(JSON.stringify({
  create: { id: created.id, text: created.content[0].text, stop: created.stop_reason, usage: created.usage },
  stream: { text: streamed, final: final.content[0].text, usage: final.usage },
  tool: tool.content.at(-1),
  toolStream: toolStream.content.at(-1),
  count: count.input_tokens,
  authError,
}));

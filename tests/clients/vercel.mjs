// The Vercel AI SDK's default OpenAI provider (the Responses API) against
// a gateway: node vercel.mjs BASE_URL API_KEY MODEL. Prints one JSON line
// with what generateText and streamText returned.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const openai = createOpenAI({ baseURL, apiKey });
// Stored responses do not exist yet: store: true would make the SDK send
// earlier turns as item references.
const providerOptions = { openai: { store: false } };

const generated = await generateText({ model: openai(model), prompt: "hello there", providerOptions });
const streamed = streamText({ model: openai(model), prompt: "hello there", providerOptions });
let text = "";
for await (const delta of streamed.textStream) text += delta;
console.log(JSON.stringify({
  generate: { text: generated.text, usage: generated.usage, finishReason: generated.finishReason },
  stream: { text, usage: await streamed.usage, finishReason: await streamed.finishReason },
}));

// The Vercel AI SDK's default OpenAI provider (the Responses API) against
// a gateway: node vercel.mjs BASE_URL API_KEY MODEL [stateless|stored].
// Prints one JSON line with what the SDK returned.
//   stateless: generateText and streamText with store: false;
//   stored:    two turns with the default store: true, where the SDK sends
//              the first answer back as an item_reference.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";

const [baseURL, apiKey, model, mode = "stateless"] = process.argv.slice(2);
const openai = createOpenAI({ baseURL, apiKey });

if (mode === "stored") {
  const first = await generateText({ model: openai(model), prompt: "hello there" });
  const second = await generateText({
    model: openai(model),
    messages: [{ role: "user", content: "hello there" }, ...first.response.messages, { role: "user", content: "more" }],
  });
  console.log(JSON.stringify({ first: first.text, second: second.text }));
} else {
  const providerOptions = { openai: { store: false } };
  const generated = await generateText({ model: openai(model), prompt: "hello there", providerOptions });
  const streamed = streamText({ model: openai(model), prompt: "hello there", providerOptions });
  let text = "";
  for await (const delta of streamed.textStream) text += delta;
  console.log(JSON.stringify({
    generate: { text: generated.text, usage: generated.usage, finishReason: generated.finishReason },
    stream: { text, usage: await streamed.usage, finishReason: await streamed.finishReason },
  }));
}

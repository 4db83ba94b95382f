// Drives the official ollama-js client against the proxy and prints what it got back as one JSON object.
import { Ollama } from "ollama";

const ollama = new Ollama({ host: process.argv[2] });
const messages = [{ role: "user", content: "hi" }];
const result = {};

result.version = await ollama.version();
result.list = await ollama.list();
result.chat = await ollama.chat({ model: "mistral", messages });
result.chatStream = [];
for await (const part of await ollama.chat({ model: "mistral", messages, stream: true })) {
  result.chatStream.push(part);
}
result.generate = await ollama.generate({ model: "mistral", prompt: "hi" });
result.generateStream = [];
for await (const part of await ollama.generate({ model: "mistral", prompt: "hi", stream: true })) {
  result.generateStream.push(part);
}
try {
  await ollama.chat({ model: "no-such-model", messages });
  result.missing = null;
} catch (error) {
  result.missing = { name: error.name, message: error.message, status: error.status_code };
}
process.stdout.write(JSON.stringify(result));

"""Pure functions between the Ollama wire and mistral.rs's OpenAI-shaped one, by direction and by route."""

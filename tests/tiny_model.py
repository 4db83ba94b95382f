"""A tiny random-weight Llama model directory that the embedded mistral.rs engine loads in milliseconds.

`build_tiny_model(directory)` writes a ChatML Llama (hidden 64, 2 layers, byte-level BPE vocabulary of
`VOCAB_SIZE` tokens) as config.json, model.safetensors, tokenizer.json, tokenizer_config.json and
generation_config.json. Load it with `mistralrs.Runner(which=mistralrs.Which.Plain(model_id=str(directory)))`.

The weights are random (fixed seed, so builds are byte-identical), with one deliberate twist: embedding dimension 0
is a constant "bias" feature, and the LM head uses it to push the logits of the special tokens, of control
characters and of non-ASCII bytes about 30 below the rest. So the model only ever emits printable ASCII (every
streamed chunk is valid UTF-8, chunks match tokens) and never emits `<|im_end|>`: a generation always runs to
`max_tokens` with finish_reason "length", whatever the sampling settings. Use stop sequences to end one early.
"""

from __future__ import annotations

import json
import pathlib
from collections import Counter

import numpy as np
from safetensors.numpy import save_file
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

__all__ = [
    "BOS_TOKEN",
    "EOS_TOKEN",
    "SPECIAL_TOKENS",
    "VOCAB_SIZE",
    "build_tiny_model",
    "render_chatml",
]

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # ids 0, 1, 2
UNK_TOKEN, BOS_TOKEN, EOS_TOKEN = SPECIAL_TOKENS
_N_MERGES = 140
VOCAB_SIZE = len(SPECIAL_TOKENS) + 256 + _N_MERGES

_SEED = 20240601
_STD = 0.02
_HIDDEN = 64
_INTERMEDIATE = 128
_LAYERS = 2
_HEADS = 4
_KV_HEADS = 2
_HEAD_DIM = _HIDDEN // _HEADS
_BIAS_DIM = 0  # embedding feature that is 1.0 for every token
_SUPPRESS = -4.0  # LM-head weight on the bias feature for tokens the model must not emit

# The merges are learned from this text, so common English words take one or two tokens.
_CORPUS = """\
The quick brown fox jumps over the lazy dog. Hello, world! How are you today? I am fine, thank you.
This is a tiny model for tests of the proxy. It is not trained and it will not say anything useful.
The user asks a question and the assistant gives an answer. What is the weather in Paris?
Call the tool with the arguments, then read the result and write the reply to the user.
There are 10 numbers: 0 1 2 3 4 5 6 7 8 9. Some of them are in this sentence, and some are not.
"""

_CHAT_TEMPLATE = (
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages and messages[0]['role'] == 'system' %}{{- messages[0]['content'] + '\\n\\n' }}{%- endif %}"
    "{{- '# Tools\\n' }}"
    "{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (tools and loop.first and message['role'] == 'system') %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string %}{{- message['content'] }}"
    "{%- elif message['content'] %}"
    "{%- for part in message['content'] %}{%- if part['type'] == 'text' %}{{- part['text'] }}{%- endif %}{%- endfor %}"
    "{%- endif %}"
    "{%- if message['tool_calls'] is defined and message['tool_calls'] %}"
    "{%- for call in message['tool_calls'] %}"
    "{{- '\\n<tool_call>\\n' + (call['function'] | tojson) + '\\n</tool_call>' }}"
    "{%- endfor %}"
    "{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def render_chatml(messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
    """What the chat template renders for plain-string messages without tools (for counting prompt tokens)."""
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def build_tiny_model(directory: pathlib.Path) -> pathlib.Path:
    """Write config.json, model.safetensors, tokenizer.json, tokenizer_config.json (with a ChatML chat_template),
    generation_config.json into `directory` (created if needed) and return it. Deterministic (fixed seed):
    building twice gives byte-identical files. Total size about 0.5 MB."""
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer()
    _write_json(directory / "config.json", _config())
    _write_json(directory / "generation_config.json", _generation_config())
    _write_json(directory / "tokenizer_config.json", _tokenizer_config())
    (directory / "tokenizer.json").write_text(tokenizer.to_str(pretty=True), encoding="utf-8")
    save_file(_weights(_emittable(tokenizer)), str(directory / "model.safetensors"))
    return directory


def _write_json(path: pathlib.Path, value: dict[str, object]) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def _byte_alphabet() -> list[str]:
    """GPT-2's printable stand-in character for each byte value 0..255, in byte order."""
    direct = {*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)}
    extra = iter(range(256, 512))
    return [chr(b) if b in direct else chr(next(extra)) for b in range(256)]


def _learn_merges(words: list[str], n_merges: int) -> list[tuple[str, str]]:
    """Plain BPE on pre-tokenized words: merge the most frequent pair, ties broken by the pair itself."""
    counts = Counter(words)
    splits = {word: list(word) for word in counts}
    merges: list[tuple[str, str]] = []
    while len(merges) < n_merges:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, count in counts.items():
            symbols = splits[word]
            for pair in zip(symbols, symbols[1:], strict=False):
                pairs[pair] += count
        if not pairs:
            break
        best = max(pairs, key=lambda pair: (pairs[pair], pair))
        merges.append(best)
        for word, symbols in splits.items():
            merged: list[str] = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            splits[word] = merged
    return merges


def _tokenizer() -> Tokenizer:
    pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    words = [piece for piece, _ in pre_tokenizer.pre_tokenize_str(_CORPUS)]
    merges = _learn_merges(words, _N_MERGES)
    if len(merges) != _N_MERGES:
        raise RuntimeError(f"the corpus yields only {len(merges)} merges, {_N_MERGES} wanted")
    tokens = [*SPECIAL_TOKENS, *_byte_alphabet(), *(left + right for left, right in merges)]
    tokenizer = Tokenizer(models.BPE(vocab={token: i for i, token in enumerate(tokens)}, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in SPECIAL_TOKENS])
    if tokenizer.get_vocab_size() != VOCAB_SIZE:
        raise RuntimeError(f"vocabulary has {tokenizer.get_vocab_size()} tokens, {VOCAB_SIZE} expected")
    return tokenizer


def _emittable(tokenizer: Tokenizer) -> np.ndarray:
    """Mask of the tokens the model may generate: those decoding to printable ASCII (plus newline)."""
    allowed = np.zeros(VOCAB_SIZE, dtype=bool)
    for token_id in range(len(SPECIAL_TOKENS), VOCAB_SIZE):
        text = tokenizer.decode([token_id])
        allowed[token_id] = text != "" and all(c == "\n" or " " <= c <= "~" for c in text)
    return allowed


def _weights(emittable: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(_SEED)

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(_STD)).astype(np.float32)

    embed = normal(VOCAB_SIZE, _HIDDEN)
    embed[:, _BIAS_DIM] = 1.0
    lm_head = normal(VOCAB_SIZE, _HIDDEN)
    lm_head[:, _BIAS_DIM] = np.where(emittable, 0.0, _SUPPRESS)
    tensors = {"model.embed_tokens.weight": embed}
    for n in range(_LAYERS):
        prefix = f"model.layers.{n}."
        tensors[prefix + "self_attn.q_proj.weight"] = normal(_HEADS * _HEAD_DIM, _HIDDEN)
        tensors[prefix + "self_attn.k_proj.weight"] = normal(_KV_HEADS * _HEAD_DIM, _HIDDEN)
        tensors[prefix + "self_attn.v_proj.weight"] = normal(_KV_HEADS * _HEAD_DIM, _HIDDEN)
        tensors[prefix + "self_attn.o_proj.weight"] = normal(_HIDDEN, _HEADS * _HEAD_DIM)
        tensors[prefix + "mlp.gate_proj.weight"] = normal(_INTERMEDIATE, _HIDDEN)
        tensors[prefix + "mlp.up_proj.weight"] = normal(_INTERMEDIATE, _HIDDEN)
        tensors[prefix + "mlp.down_proj.weight"] = normal(_HIDDEN, _INTERMEDIATE)
        tensors[prefix + "input_layernorm.weight"] = np.ones(_HIDDEN, dtype=np.float32)
        tensors[prefix + "post_attention_layernorm.weight"] = np.ones(_HIDDEN, dtype=np.float32)
    tensors["model.norm.weight"] = np.ones(_HIDDEN, dtype=np.float32)
    tensors["lm_head.weight"] = lm_head
    return tensors


def _config() -> dict[str, object]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": _HIDDEN,
        "intermediate_size": _INTERMEDIATE,
        "num_hidden_layers": _LAYERS,
        "num_attention_heads": _HEADS,
        "num_key_value_heads": _KV_HEADS,
        "head_dim": _HEAD_DIM,
        "hidden_act": "silu",
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "rope_scaling": None,
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": False,
        "vocab_size": VOCAB_SIZE,
        "bos_token_id": SPECIAL_TOKENS.index(BOS_TOKEN),
        "eos_token_id": SPECIAL_TOKENS.index(EOS_TOKEN),
        "pad_token_id": SPECIAL_TOKENS.index(UNK_TOKEN),
        "torch_dtype": "float32",
        "use_cache": True,
    }


def _generation_config() -> dict[str, object]:
    return {
        "bos_token_id": SPECIAL_TOKENS.index(BOS_TOKEN),
        "eos_token_id": SPECIAL_TOKENS.index(EOS_TOKEN),
        "pad_token_id": SPECIAL_TOKENS.index(UNK_TOKEN),
    }


def _tokenizer_config() -> dict[str, object]:
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": 2048,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "bos_token": BOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "unk_token": UNK_TOKEN,
        "pad_token": UNK_TOKEN,
        "added_tokens_decoder": {
            str(i): {
                "content": token,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": True,
            }
            for i, token in enumerate(SPECIAL_TOKENS)
        },
        "chat_template": _CHAT_TEMPLATE,
    }

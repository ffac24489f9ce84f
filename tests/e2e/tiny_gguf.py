"""Write a tiny llama-architecture model for a real llama.cpp engine to load (about 0.5 MB).

    .venv-engine/bin/python tests/e2e/tiny_gguf.py OUT.gguf

Run by the engine's Python (``./dev engine``), which has the ``gguf`` package; the project's
does not. Random weights: the engine test checks streaming, usage, cancellation and errors, not
what the text says. Two layers 64 wide; a SentencePiece vocabulary of the printable ASCII
characters (space as ``▁``) and the 256 byte tokens llama.cpp's tokenizer falls back to (it
refuses a vocabulary without them, and without a newline). The output layer gives the control
and byte tokens nothing, so the model writes printable ASCII and never ends on its own: a
reply is as long as ``max_tokens`` or the context allows. A chat template is included, so
``/v1/chat/completions`` works.
"""

from __future__ import annotations

import sys

import gguf
import numpy as np

EMBEDDING, FEED_FORWARD, LAYERS, HEADS, CONTEXT = 64, 128, 2, 4, 32768
CHAT_TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}<assistant>"
)


def write(path: str) -> None:
    printable = [chr(c) for c in range(0x20, 0x7F)]
    tokens = ["<unk>", "<s>", "</s>", *("\u2581" if c == " " else c for c in printable)]
    normal = len(tokens)
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    kinds = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    kinds += [gguf.TokenType.NORMAL] * (normal - 3) + [gguf.TokenType.BYTE] * 256
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("tiny")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(EMBEDDING)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FEED_FORWARD)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(EMBEDDING // HEADS)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list([t.encode() for t in tokens])
    writer.add_token_scores([0.0] * 3 + [-float(i) for i in range(normal - 3)] + [-1e3] * 256)
    writer.add_token_types(kinds)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    rng = np.random.default_rng(7)

    def random(name: str, *shape: int, scale: float = 0.5) -> None:
        writer.add_tensor(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    ones = np.ones(EMBEDDING, np.float32)
    random("token_embd.weight", len(tokens), EMBEDDING)
    writer.add_tensor("output_norm.weight", ones)
    output = rng.standard_normal((len(tokens), EMBEDDING)).astype(np.float32)
    output[:3] = 0  # never <unk>, <s> or </s>
    output[normal:] = 0  # never a byte token
    writer.add_tensor("output.weight", output)
    for layer in range(LAYERS):
        block = f"blk.{layer}"
        writer.add_tensor(f"{block}.attn_norm.weight", ones)
        for part in ("attn_q", "attn_k", "attn_v", "attn_output"):
            random(f"{block}.{part}.weight", EMBEDDING, EMBEDDING)
        writer.add_tensor(f"{block}.ffn_norm.weight", ones)
        random(f"{block}.ffn_gate.weight", FEED_FORWARD, EMBEDDING)
        random(f"{block}.ffn_up.weight", FEED_FORWARD, EMBEDDING)
        random(f"{block}.ffn_down.weight", EMBEDDING, FEED_FORWARD)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    write(sys.argv[1])

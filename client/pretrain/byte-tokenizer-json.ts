// A Hugging Face tokenizer.json for the byte-level vocabulary (256 bytes + <|endoftext|>, byte b ↦ id b), so a
// pretrained base directory is complete for any Hugging Face tool and loads here through @huggingface/tokenizers
// with exactly ByteTokenizer's ids. Bytes are spelled with GPT-2's printable byte-to-character table, as the
// ByteLevel pre-tokenizer expects; with no merges, BPE then maps each byte to its own id.

const END_OF_TEXT = "<|endoftext|>";

/** GPT-2's bijection from bytes to printable characters (printable Latin-1 bytes stand for themselves). */
function byteCharacters(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let next = 256;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(printable(b) ? b : next++));
}

export function byteLevelTokenizerJson(): object {
  const vocab = Object.fromEntries(byteCharacters().map((c, b) => [c, b]));
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [
      {
        id: 256,
        content: END_OF_TEXT,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      },
    ],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab: { ...vocab, [END_OF_TEXT]: 256 },
      merges: [],
    },
  };
}

export const byteLevelTokenizerConfig = { eos_token: END_OF_TEXT, model_max_length: 1024 };

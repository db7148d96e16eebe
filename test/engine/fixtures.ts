// Tiny configs shared by the engine tests.
export const TINY_GPT2 = {
  model_type: "gpt2",
  vocab_size: 13,
  n_positions: 8,
  n_embd: 8,
  n_layer: 2,
  n_head: 2,
};
export const TINY_LLAMA = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: 13,
  max_position_embeddings: 8,
  hidden_size: 8,
  intermediate_size: 12,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  rope_theta: 10000,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
};

package mlm

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	bertBase := `{"architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": false,
 "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
 "intermediate_size": 3072, "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
 "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0, "position_embedding_type": "absolute",
 "transformers_version": "4.6.0.dev0", "type_vocab_size": 2, "use_cache": true, "vocab_size": 30522}`
	distil := `{"model_type": "distilbert", "dim": 768, "n_layers": 6, "n_heads": 12, "hidden_dim": 3072,
 "activation": "gelu", "dropout": 0.1, "attention_dropout": 0.1, "max_position_embeddings": 512, "vocab_size": 30522,
 "pad_token_id": 0, "sinusoidal_pos_embds": false}`
	tests := []struct {
		name  string
		json  string
		check func(Config) bool
		err   string
	}{
		{"bert-base", bertBase, func(c Config) bool {
			want := BERTBaseConfig()
			return c.HiddenSize == want.HiddenSize && c.NumHiddenLayers == 12 && c.LayerNormEps == 1e-12 &&
				c.VocabSize == 30522 && string(c.Extra["transformers_version"]) == `"4.6.0.dev0"`
		}, ""},
		{"distilbert keys", distil, func(c Config) bool {
			return c.HiddenSize == 768 && c.NumHiddenLayers == 6 && c.IntermediateSize == 3072 && c.HiddenAct == "gelu" && c.TypeVocabSize == 0
		}, ""},
		{"roberta defaults", `{"model_type":"roberta","vocab_size":50265,"hidden_size":768,"num_attention_heads":12,"num_hidden_layers":12,"intermediate_size":3072,"hidden_act":"gelu","max_position_embeddings":514,"pad_token_id":1,"type_vocab_size":1,"layer_norm_eps":1e-5}`,
			func(c Config) bool { return c.MaxSequenceLength() == 512 && c.LayerNormEps == 1e-5 }, ""},
		{"xlm-roberta-base", `{"architectures":["XLMRobertaForMaskedLM"],"attention_probs_dropout_prob":0.1,"bos_token_id":0,"eos_token_id":2,"hidden_act":"gelu","hidden_dropout_prob":0.1,"hidden_size":768,"initializer_range":0.02,"intermediate_size":3072,"layer_norm_eps":1e-05,"max_position_embeddings":514,"model_type":"xlm-roberta","num_attention_heads":12,"num_hidden_layers":12,"output_past":true,"pad_token_id":1,"position_embedding_type":"absolute","transformers_version":"4.17.0.dev0","type_vocab_size":1,"use_cache":true,"vocab_size":250002}`,
			func(c Config) bool {
				return c.ModelType == ModelTypeXLMRoBERTa && c.family() == ModelTypeRoBERTa && c.MaxSequenceLength() == 512 &&
					c.VocabSize == 250002 && c.LayerNormEps == 1e-5 && slices.Equal(c.Architectures, []string{"XLMRobertaForMaskedLM"}) &&
					string(c.Extra["bos_token_id"]) == "0"
			}, ""},
		// XLMRobertaConfig's defaults are BertConfig's but for pad_token_id 1.
		{"xlm-roberta defaults", `{"model_type":"xlm-roberta"}`,
			func(c Config) bool {
				return c.VocabSize == 30522 && c.MaxSequenceLength() == 510 && c.TypeVocabSize == 2 && c.LayerNormEps == 1e-12 && c.PadTokenID == 1
			}, ""},
		{"unknown model_type", `{"model_type":"gpt2"}`, nil, `unsupported model_type "gpt2" (supported: bert, distilbert, modernbert, roberta, xlm-roberta)`},
		{"xlm-roberta-xl", `{"model_type":"xlm-roberta-xl"}`, nil, `unsupported model_type "xlm-roberta-xl"`},
		{"missing model_type", `{"hidden_size":8}`, nil, "missing or invalid model_type"},
		{"unknown activation", strings.Replace(bertBase, `"hidden_act": "gelu"`, `"hidden_act": "swish"`, 1), nil, `unsupported hidden_act "swish"`},
		{"heads", strings.Replace(bertBase, `"num_attention_heads": 12`, `"num_attention_heads": 7`, 1), nil, "not a multiple"},
		{"relative positions", strings.Replace(bertBase, `"absolute"`, `"relative_key"`, 1), nil, "position_embedding_type"},
		{"not json", `{`, nil, "invalid model config"},
		{"wrong type", `{"model_type":"bert","hidden_size":"big"}`, nil, "invalid model config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.json))
			if tc.err != "" {
				if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want ErrConfig mentioning %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("parsed %+v", c)
			}
			// Round trip through MarshalConfig.
			data, err := MarshalConfig(c)
			if err != nil {
				t.Fatal(err)
			}
			c2, err := ParseConfig(data)
			if err != nil {
				t.Fatalf("re-parse %s: %v", data, err)
			}
			if !tc.check(c2) || c2.ModelType != c.ModelType {
				t.Errorf("round trip changed config: %s", data)
			}
			if len(c.Architectures) == 0 && !strings.Contains(string(data), `"architectures": ["`+hfArchitecture(c.ModelType)+`"]`) {
				t.Errorf("config written without %s's architectures: %s", c.ModelType, data)
			}
			if c.ModelType == ModelTypeDistilBERT && (strings.Contains(string(data), "hidden_size") || !strings.Contains(string(data), `"dim": 768`)) {
				t.Errorf("distilbert config not written with its own keys: %s", data)
			}
		})
	}
}

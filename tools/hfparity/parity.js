#!/usr/bin/env node
// parity.js answers requests with the real Hugging Face tokenizers (the Rust
// library, through the @anush008/tokenizers napi binding) so that clozeloop's
// Go tokenizer can be compared with it in tests.
//
// Protocol: one JSON request per line on stdin, one JSON response per line on
// stdout, in order. Every response is {"results": [...]} or {"error": "..."}.
//
//   {"op":"encode","tokenizer":FILE,"texts":[...],"add_special_tokens":true}
//       -> results[i] = {"ids":[...],"tokens":[...],"offsets":[[start,end],...]}
//          (offsets in Unicode code points, as the binding reports them)
//   {"op":"decode","tokenizer":FILE,"ids":[[...],...],"skip_special_tokens":true}
//       -> results[i] = decoded string
//   {"op":"normalize","bert":{"cleanText":true,...},"texts":[...]}
//       -> results[i] = BertNormalizer output (with "unicode":"NFKD" and
//          no "bert", the NFC, NFD, NFKC or NFKD normalizer's)
//   {"op":"pretokenize","texts":[...]}
//       -> results[i] = [[piece,[start,end]],...] from BertPreTokenizer, or
//          with "byte_level":{"add_prefix_space":false,"use_regex":true}
//          from the ByteLevel pre-tokenizer (pieces in byte-level form)
//   {"op":"vocab","tokenizer":FILE} -> results = {token: id, ...}
//   {"op":"train","files":[...],"bert":{...}} -> results = {token: id, ...}
//       (a WordPiece vocabulary trained by the default WordPieceTrainer on
//       the files, after BertNormalizer with those options and
//       BertPreTokenizer); with "save":FILE it also writes a complete BERT
//       tokenizer.json (specials [PAD] [UNK] [CLS] [SEP] [MASK] = 0-4, then the
//       trained vocabulary) with the Hugging Face library's own serializer
//   {"op":"train_bpe","files":[...],"save":FILE,"add_prefix_space":false,
//    "trim_offsets":true,"full_alphabet":true,"unk_token":null,
//    "fuse_unk":false}
//       -> results = {"vocab_size":N,"merges":M}: a byte-level BPE trained
//          by the default BpeTrainer after the ByteLevel pre-tokenizer,
//          written as a RoBERTa tokenizer.json (<s> <pad> </s> <unk> = 0-3,
//          the 256-character byte alphabet when full_alphabet, the trained
//          vocabulary, <mask> last with lstrip; RobertaProcessing; ByteLevel
//          decoder; the added tokens "<ent>" (rstrip) and "foo"
//          (single_word, normalized)) by the Hugging Face serializer;
//          "normalizer":{...} sets that normalizer, and "layout":"modernbert"
//          writes GPT-NeoX/ModernBERT's layout instead: |||IP_ADDRESS||| = 0
//          (normalized), <|padding|> = 1, the byte alphabet and the trained
//          vocabulary, whitespace runs of 2-24 spaces (normalized, not
//          special), |||EMAIL_ADDRESS|||, |||PHONE_NUMBER|||, <|endoftext|>,
//          all in the model vocabulary; then special [UNK] [CLS] [SEP] [PAD]
//          [MASK] (lstrip) and normalized [unused0] [unused1] as added
//          tokens only (ModernBERT's added_tokens_decoder);
//          TemplateProcessing "[CLS] $A [SEP]"; no unknown token
//   {"op":"train_unigram","files":[...],"save":FILE}
//       -> results = {"pieces":N}: a Unigram model trained by the default
//          UnigramTrainer (8,000 pieces, no unknown token) after the NFKC
//          normalizer and the Metaspace pre-tokenizer (prepend_scheme
//          always, split), written by the Hugging Face serializer
//   {"op":"build_unigram","model":FILE,"save":FILE,"unk":true,
//    "byte_fallback":false,"quantize":0,"normalizer":{...}|null,"pre_tokenizer":{...}|null,
//    "post_processor":{...}|null,"decoder":{...}|null}
//       -> results = {"vocab_size":N}: an XLM-RoBERTa style tokenizer.json
//          from a trained model: pieces <s> <pad> </s> <unk> = 0-3 (unk_id 3
//          when unk), the 256 byte pieces <0x00>..<0xFF> when byte_fallback,
//          the trained pieces, <mask> last; the given components; added
//          tokens <s> <pad> </s> <unk>, <mask> (lstrip), "<ent>" (rstrip)
//          and "foo" (single_word, normalized); loaded and written by the
//          Hugging Face library. "quantize":Q rounds the trained scores to
//          multiples of Q, so that segmentations tie.
'use strict';

const readline = require('readline');
const tk = require('@anush008/tokenizers');

const cache = new Map();
function load(file) {
  let t = cache.get(file);
  if (!t) {
    t = tk.Tokenizer.fromFile(file);
    cache.set(file, t);
  }
  return t;
}

async function handle(req) {
  switch (req.op) {
    case 'encode': {
      const t = load(req.tokenizer);
      const add = req.add_special_tokens !== false;
      const out = [];
      for (const text of req.texts) {
        const enc = await t.encode(text, null, { addSpecialTokens: add });
        out.push({ ids: enc.getIds(), tokens: enc.getTokens(), offsets: enc.getOffsets() });
      }
      return out;
    }
    case 'decode': {
      const t = load(req.tokenizer);
      const out = [];
      for (const ids of req.ids) {
        out.push(await t.decode(ids, !!req.skip_special_tokens));
      }
      return out;
    }
    case 'normalize': {
      if (req.unicode) {
        const forms = { NFC: tk.nfcNormalizer, NFD: tk.nfdNormalizer, NFKC: tk.nfkcNormalizer, NFKD: tk.nfkdNormalizer };
        const n = forms[req.unicode]();
        return req.texts.map((s) => n.normalizeString(s));
      }
      const n = tk.bertNormalizer(req.bert || {});
      return req.texts.map((s) => n.normalizeString(s));
    }
    case 'pretokenize': {
      const bl = req.byte_level;
      const p = bl ? tk.byteLevelPreTokenizer(!!bl.add_prefix_space, bl.use_regex !== false) : tk.bertPreTokenizer();
      return req.texts.map((s) => p.preTokenizeString(s));
    }
    case 'vocab':
      return load(req.tokenizer).getVocab(true);
    case 'train': {
      // The binding trains with the model's default WordPieceTrainer
      // (vocabulary 30,000, min frequency 0, no special tokens, '##').
      const t = new tk.Tokenizer(tk.WordPiece.empty());
      t.setNormalizer(tk.bertNormalizer(req.bert || {}));
      t.setPreTokenizer(tk.bertPreTokenizer());
      t.train(req.files);
      const trained = t.getVocab(false);
      if (!req.save) return trained;
      // A complete BERT tokenizer written by the Hugging Face library itself:
      // the special tokens first, then the trained vocabulary.
      const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
      const vocab = {};
      specials.forEach((s, i) => { vocab[s] = i; });
      for (const [token, id] of Object.entries(trained)) vocab[token] = id + specials.length;
      const out = new tk.Tokenizer(tk.WordPiece.init(vocab, { unkToken: '[UNK]' }));
      out.setNormalizer(tk.bertNormalizer(req.bert || {}));
      out.setPreTokenizer(tk.bertPreTokenizer());
      out.setPostProcessor(tk.bertProcessing(['[SEP]', 3], ['[CLS]', 2]));
      out.setDecoder(tk.wordPieceDecoder('##', true));
      out.addSpecialTokens(specials);
      out.save(req.save, true);
      return trained;
    }
    case 'train_bpe':
      return trainBPE(req);
    case 'train_unigram': {
      const t = new tk.Tokenizer(tk.Unigram.empty());
      t.setNormalizer(tk.nfkcNormalizer());
      t.setPreTokenizer(tk.metaspacePreTokenizer('\u2581', 'always', true));
      t.train(req.files);
      t.save(req.save, true);
      return { pieces: t.getVocabSize(false) };
    }
    case 'build_unigram':
      return buildUnigram(req);
    default:
      throw new Error(`unknown op ${JSON.stringify(req.op)}`);
  }
}

// trainBPE trains a byte-level BPE and saves it in RoBERTa's form.
function trainBPE(req) {
  if (req.layout === 'modernbert') return trainModernBERT(req);
  const prefixSpace = !!req.add_prefix_space;
  const trim = req.trim_offsets !== false;
  const j = trainByteLevel(req, prefixSpace);
  const vocab = {};
  let n = 0;
  for (const s of ['<s>', '<pad>', '</s>', '<unk>']) vocab[s] = n++;
  if (req.full_alphabet !== false) {
    for (const c of tk.byteLevelAlphabet().sort()) if (!(c in vocab)) vocab[c] = n++;
  }
  const trained = Object.entries(j.model.vocab).sort((a, b) => a[1] - b[1]);
  for (const [tok] of trained) if (!(tok in vocab)) vocab[tok] = n++;
  vocab['<mask>'] = n++;
  j.model.vocab = vocab;
  j.model.unk_token = req.unk_token || null;
  j.model.fuse_unk = !!req.fuse_unk;
  j.decoder = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
  j.post_processor = { type: 'RobertaProcessing', sep: ['</s>', 2], cls: ['<s>', 0], trim_offsets: trim, add_prefix_space: prefixSpace };
  j.pre_tokenizer = { type: 'ByteLevel', add_prefix_space: prefixSpace, trim_offsets: trim, use_regex: true };
  j.added_tokens = [];
  if (req.normalizer) j.normalizer = req.normalizer;
  const out = tk.Tokenizer.fromString(JSON.stringify(j));
  out.addAddedTokens([
    new tk.AddedToken('<s>', true, { normalized: true }),
    new tk.AddedToken('<pad>', true, { normalized: true }),
    new tk.AddedToken('</s>', true, { normalized: true }),
    new tk.AddedToken('<unk>', true, { normalized: true }),
    new tk.AddedToken('<mask>', true, { leftStrip: true, normalized: false }),
  ]);
  out.addAddedTokens([
    new tk.AddedToken('<ent>', false, { rightStrip: true, normalized: false }),
    new tk.AddedToken('foo', false, { singleWord: true, normalized: true }),
  ]);
  out.save(req.save, true);
  return { vocab_size: out.getVocabSize(true), merges: j.model.merges.length };
}

// trainByteLevel trains a byte-level BPE and returns its tokenizer.json
// as the Hugging Face serializer writes it.
function trainByteLevel(req, prefixSpace) {
  const fs = require('fs');
  const os = require('os');
  const path = require('path');
  const t = new tk.Tokenizer(tk.BPE.empty());
  t.setPreTokenizer(tk.byteLevelPreTokenizer(prefixSpace, true));
  t.train(req.files);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hfparity-'));
  const trainedFile = path.join(tmp, 'trained.json');
  t.save(trainedFile, false);
  const j = JSON.parse(fs.readFileSync(trainedFile, 'utf8'));
  fs.rmSync(tmp, { recursive: true, force: true });
  return j;
}

// trainModernBERT trains a byte-level BPE and saves it in the layout of
// GPT-NeoX's and ModernBERT's tokenizer.json (see the protocol above).
function trainModernBERT(req) {
  const j = trainByteLevel(req, false);
  const vocab = {};
  let n = 0;
  const added = [];
  const add = (content, special, opts) => {
    added.push({
      id: content in vocab ? vocab[content] : n++, content, single_word: false,
      lstrip: !!(opts && opts.lstrip), rstrip: false, normalized: !special, special,
    });
  };
  vocab['|||IP_ADDRESS|||'] = n++;
  vocab['<|padding|>'] = n++;
  for (const c of tk.byteLevelAlphabet().sort()) if (!(c in vocab)) vocab[c] = n++;
  const trained = Object.entries(j.model.vocab).sort((a, b) => a[1] - b[1]);
  for (const [tok] of trained) if (!(tok in vocab)) vocab[tok] = n++;
  const spaces = [];
  for (let k = 24; k >= 2; k--) spaces.push(' '.repeat(k));
  for (const s of [...spaces, '|||EMAIL_ADDRESS|||', '|||PHONE_NUMBER|||', '<|endoftext|>']) if (!(s in vocab)) vocab[s] = n++;
  add('|||IP_ADDRESS|||', false);
  add('<|padding|>', true);
  for (const s of spaces) add(s, false);
  add('|||EMAIL_ADDRESS|||', false);
  add('|||PHONE_NUMBER|||', false);
  add('<|endoftext|>', true);
  for (const s of ['[UNK]', '[CLS]', '[SEP]', '[PAD]', '[MASK]']) add(s, true, { lstrip: s === '[MASK]' });
  for (const s of ['[unused0]', '[unused1]']) add(s, false);
  added.sort((a, b) => a.id - b.id);
  const idOf = (s) => added.find((a) => a.content === s).id;
  const st = (s) => ({ SpecialToken: { id: s, type_id: 0 } });
  const sq = (s) => ({ Sequence: { id: s, type_id: 0 } });
  j.model.vocab = vocab;
  j.model.unk_token = null;
  j.model.continuing_subword_prefix = '';
  j.model.end_of_word_suffix = '';
  j.normalizer = req.normalizer || { type: 'NFC' };
  j.pre_tokenizer = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  j.post_processor = {
    type: 'TemplateProcessing',
    single: [st('[CLS]'), sq('A'), st('[SEP]')],
    pair: [st('[CLS]'), sq('A'), st('[SEP]'), sq('B'), st('[SEP]')],
    special_tokens: {
      '[CLS]': { id: '[CLS]', ids: [idOf('[CLS]')], tokens: ['[CLS]'] },
      '[SEP]': { id: '[SEP]', ids: [idOf('[SEP]')], tokens: ['[SEP]'] },
    },
  };
  j.decoder = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
  j.added_tokens = added;
  const out = tk.Tokenizer.fromString(JSON.stringify(j));
  out.save(req.save, true);
  return { vocab_size: out.getVocabSize(true), merges: j.model.merges.length };
}

// buildUnigram writes an XLM-RoBERTa style tokenizer.json around a trained
// Unigram model.
function buildUnigram(req) {
  const fs = require('fs');
  const j = JSON.parse(fs.readFileSync(req.model, 'utf8'));
  const vocab = [['<s>', 0], ['<pad>', 0], ['</s>', 0], ['<unk>', 0]];
  if (req.byte_fallback) {
    for (let b = 0; b < 256; b++) vocab.push(['<0x' + b.toString(16).toUpperCase().padStart(2, '0') + '>', 0]);
  }
  const seen = new Set(vocab.map((p) => p[0]));
  const q = req.quantize || 0;
  for (const [piece, score] of j.model.vocab) {
    if (!seen.has(piece)) {
      seen.add(piece);
      vocab.push([piece, q > 0 ? Math.round(score / q) * q : score]);
    }
  }
  vocab.push(['<mask>', 0]);
  const doc = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: req.normalizer === undefined ? null : req.normalizer,
    pre_tokenizer: req.pre_tokenizer === undefined ? null : req.pre_tokenizer,
    post_processor: req.post_processor === undefined ? null : req.post_processor,
    decoder: req.decoder === undefined ? null : req.decoder,
    model: { type: 'Unigram', unk_id: req.unk === false ? null : 3, vocab, byte_fallback: !!req.byte_fallback },
  };
  const out = tk.Tokenizer.fromString(JSON.stringify(doc));
  out.addAddedTokens([
    new tk.AddedToken('<s>', true, { normalized: false }),
    new tk.AddedToken('<pad>', true, { normalized: false }),
    new tk.AddedToken('</s>', true, { normalized: false }),
    new tk.AddedToken('<unk>', true, { normalized: false }),
    new tk.AddedToken('<mask>', true, { leftStrip: true, normalized: false }),
  ]);
  out.addAddedTokens([
    new tk.AddedToken('<ent>', false, { rightStrip: true, normalized: false }),
    new tk.AddedToken('foo', false, { singleWord: true, normalized: true }),
  ]);
  out.save(req.save, true);
  return { vocab_size: out.getVocabSize(true) };
}

async function main() {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (line.trim() === '') continue;
    let resp;
    try {
      resp = { results: await handle(JSON.parse(line)) };
    } catch (e) {
      resp = { error: String(e && e.message ? e.message : e) };
    }
    process.stdout.write(JSON.stringify(resp) + '\n');
  }
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack ? e.stack : e) + '\n');
  process.exit(1);
});

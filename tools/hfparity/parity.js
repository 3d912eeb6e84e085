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
//       -> results[i] = BertNormalizer output
//   {"op":"pretokenize","texts":[...]}
//       -> results[i] = [[piece,[start,end]],...] from BertPreTokenizer
//   {"op":"vocab","tokenizer":FILE} -> results = {token: id, ...}
//   {"op":"train","files":[...],"bert":{...}} -> results = {token: id, ...}
//       (a WordPiece vocabulary trained by the default WordPieceTrainer on
//       the files, after BertNormalizer with those options and
//       BertPreTokenizer); with "save":FILE it also writes a complete BERT
//       tokenizer.json (specials [PAD] [UNK] [CLS] [SEP] [MASK] = 0-4, then the
//       trained vocabulary) with the Hugging Face library's own serializer
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
      const n = tk.bertNormalizer(req.bert || {});
      return req.texts.map((s) => n.normalizeString(s));
    }
    case 'pretokenize': {
      const p = tk.bertPreTokenizer();
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
    default:
      throw new Error(`unknown op ${JSON.stringify(req.op)}`);
  }
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
